"""The RTP/SRTP transport of WebRTC viewers: a stream packetized once (`packetizer`),
fanned out to every viewer (`fanout`, `pacer`), one header per viewer before shared
bytes (`rtp_sender`), SRTP in place (`srtp_frames`) and as few sends as possible
(`datagrams`); the per-viewer loop in C where it was built (`_sendpath.c`)."""
