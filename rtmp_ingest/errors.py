"""The one exception the protocol core raises internally.

Every parser in this package raises `ProtocolViolation` for input it will not accept;
`RtmpConnection` turns it into a `ProtocolError` event and stops, so a hostile peer can
only ever end its own connection.
"""


class ProtocolViolation(Exception):
    """The peer broke the RTMP or AMF0 rules, or went past one of our limits."""
