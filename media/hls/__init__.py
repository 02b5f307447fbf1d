"""Low-Latency HLS: CMAF (fragmented MP4) segments and parts cut from a stream hub's
packets without re-encoding, and the playlists that list them, with the shop's pins and
flash sales as EXT-X-DATERANGE tags on the video's clock."""
