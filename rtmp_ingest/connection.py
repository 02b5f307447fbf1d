"""`RtmpConnection`: the sans-IO RTMP server side of one publisher connection.

Bytes go in through `receive_data`, which returns events; bytes to send come out of
`data_to_send`. The owner answers `ConnectRequested` and `PublishRequested` with the
accept/reject methods. No sockets, no clock: the asyncio shell (or a test) drives it.

States: handshake -> awaiting connect -> connecting -> connected -> publish pending ->
publishing -> unpublished; any protocol violation or refusal finishes the connection,
after which nothing is parsed and no event is returned.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

from rtmp_ingest import amf0
from rtmp_ingest.chunks import ChunkReader, ChunkWriter
from rtmp_ingest.errors import ProtocolViolation
from rtmp_ingest.events import (
    AudioData,
    ConnectRequested,
    Event,
    Metadata,
    PlayRefused,
    ProtocolError,
    PublishRequested,
    Unpublished,
    VideoData,
)
from rtmp_ingest.handshake import ServerHandshake
from rtmp_ingest.limits import Limits
from rtmp_ingest.messages import (
    ACKNOWLEDGEMENT,
    AUDIO,
    COMMAND_AMF0,
    COMMAND_AMF3,
    DATA_AMF0,
    DATA_AMF3,
    PING_REQUEST,
    PING_RESPONSE,
    SET_CHUNK_SIZE,
    SET_PEER_BANDWIDTH,
    STREAM_BEGIN,
    TIMESTAMP_MODULUS,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    Message,
)

SERVER_CHUNK_SIZE = 4096
SERVER_WINDOW = 2_500_000
DYNAMIC_BANDWIDTH = 2
CONTROL_CSID = 2
COMMAND_CSID = 3
STREAM_CSID = 5
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_USER_CONTROL = struct.Struct(">HI")
_PEER_BANDWIDTH = struct.Struct(">IB")
_UNPUBLISH_COMMANDS = frozenset({"FCUnpublish", "deleteStream", "closeStream"})
_ACKNOWLEDGED_COMMANDS = frozenset({"releaseStream", "FCPublish"})
_IGNORED_COMMANDS = frozenset({"_result", "_error", "onStatus", "onBWDone", "_checkbw"})


class _State(enum.Enum):
    HANDSHAKE = enum.auto()
    AWAITING_CONNECT = enum.auto()
    CONNECTING = enum.auto()
    CONNECTED = enum.auto()
    PUBLISH_PENDING = enum.auto()
    PUBLISHING = enum.auto()
    UNPUBLISHED = enum.auto()
    FINISHED = enum.auto()


class RtmpConnection:
    """One RTMP connection, server side, publishing only."""

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._state = _State.HANDSHAKE
        self._handshake = ServerHandshake()
        self._reader = ChunkReader(self._limits)
        self._writer = ChunkWriter()
        self._outgoing = bytearray()
        self._app = ""
        self._connect_transaction = 0.0
        self._next_stream_id = 1
        self._publish_stream_id = 0
        self._received = 0
        self._acknowledged = 0
        self._peer_window = 0

    @property
    def finished(self) -> bool:
        """True once a violation or a refusal ended the connection."""
        return self._state is _State.FINISHED

    @property
    def publishing(self) -> bool:
        return self._state is _State.PUBLISHING

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for incomplete input (bounded by the limits)."""
        return self._reader.buffered_bytes

    def data_to_send(self) -> bytes:
        """Everything produced since the last call."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    # --- input ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse `data`; a violation yields one `ProtocolError` and finishes the connection."""
        if self._state is _State.FINISHED or not data:
            return []
        events: list[Event] = []
        try:
            if self._state is _State.HANDSHAKE:
                reply, data = self._handshake.feed(data)
                self._outgoing += reply
                if not self._handshake.done:
                    return events
                self._state = _State.AWAITING_CONNECT
            self._count_received(len(data))
            for message in self._reader.feed(data):
                self._on_message(message, events)
                if self._state is _State.FINISHED:
                    break
        except ProtocolViolation as violation:
            self._state = _State.FINISHED
            self._reader.discard()
            events.append(ProtocolError(str(violation)))
        return events

    def _count_received(self, size: int) -> None:
        """Acknowledge each time the peer's window of bytes has been received."""
        self._received += size
        if self._peer_window and self._received - self._acknowledged >= self._peer_window:
            self._acknowledged = self._received
            self._send_control(ACKNOWLEDGEMENT, _U32.pack(self._received % TIMESTAMP_MODULUS))

    def _on_message(self, message: Message, events: list[Event]) -> None:
        type_id = message.type_id
        if type_id in (VIDEO, AUDIO):
            self._require_publishing(message)
            event_type = VideoData if type_id == VIDEO else AudioData
            events.append(event_type(message.timestamp, message.payload))
        elif type_id in (COMMAND_AMF0, COMMAND_AMF3):
            self._on_command(message, self._amf_values(message), events)
        elif type_id in (DATA_AMF0, DATA_AMF3):
            self._on_data(message, self._amf_values(message), events)
        elif type_id == USER_CONTROL:
            self._on_user_control(message.payload)
        elif type_id == WINDOW_ACK_SIZE:
            self._peer_window = self._control_value(message)
        elif type_id == ACKNOWLEDGEMENT:
            self._control_value(message)
        elif type_id == SET_PEER_BANDWIDTH and len(message.payload) != _PEER_BANDWIDTH.size:
            raise ProtocolViolation("Set Peer Bandwidth is not 5 bytes")

    def _require_publishing(self, message: Message) -> None:
        if self._state is not _State.PUBLISHING:
            raise ProtocolViolation("media before a publish was accepted")
        if message.stream_id != self._publish_stream_id:
            raise ProtocolViolation(f"media on stream {message.stream_id}, not the published one")

    def _amf_values(self, message: Message) -> list[Any]:
        payload = message.payload
        if message.type_id in (COMMAND_AMF3, DATA_AMF3):  # AMF0 behind one format byte
            if not payload or payload[0] != 0:
                raise ProtocolViolation("AMF3 messages are not supported")
            payload = payload[1:]
        return amf0.decode_values(payload, self._limits)

    @staticmethod
    def _control_value(message: Message) -> int:
        if len(message.payload) != 4:
            raise ProtocolViolation(f"control message type {message.type_id} is not 4 bytes")
        return _U32.unpack(message.payload)[0]

    def _on_user_control(self, payload: bytes) -> None:
        if len(payload) < 2:
            raise ProtocolViolation("User Control message too short")
        if _U16.unpack_from(payload)[0] == PING_REQUEST:
            if len(payload) != _USER_CONTROL.size:
                raise ProtocolViolation("PingRequest is not 6 bytes")
            ping_time = _USER_CONTROL.unpack(payload)[1]
            self._send_control(USER_CONTROL, _USER_CONTROL.pack(PING_RESPONSE, ping_time))

    def _on_data(self, message: Message, values: list[Any], events: list[Event]) -> None:
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) < 2 or values[0] != "onMetaData":
            return
        self._require_publishing(message)
        if not isinstance(values[1], dict):
            raise ProtocolViolation("onMetaData without an object")
        events.append(Metadata(dict(values[1])))

    def _on_command(self, message: Message, values: list[Any], events: list[Event]) -> None:
        if len(values) < 2 or not isinstance(values[0], str) or not isinstance(values[1], float):
            raise ProtocolViolation("command without a name and a transaction id")
        name, transaction = values[0], values[1]
        arguments = values[3:]
        if name == "connect":
            self._on_connect(transaction, values[2] if len(values) > 2 else None, events)
            return
        if self._state in (_State.AWAITING_CONNECT, _State.CONNECTING):
            raise ProtocolViolation(f"{name!r} before the connection was accepted")
        if name == "createStream":
            self._on_create_stream(transaction)
        elif name == "publish":
            self._on_publish(message.stream_id, arguments, events)
        elif name == "play":
            self._refuse_play(message.stream_id, arguments, events)
        elif name in _UNPUBLISH_COMMANDS:
            self._on_unpublish(events)
        elif name in _ACKNOWLEDGED_COMMANDS:
            self._reply(transaction, "_result", None)
        elif name not in _IGNORED_COMMANDS and transaction:
            self._reply(transaction, "_error", _status("error", "NetConnection.Call.Failed", name))

    def _on_connect(self, transaction: float, command: Any, events: list[Event]) -> None:
        if self._state is not _State.AWAITING_CONNECT:
            raise ProtocolViolation("connect sent twice")
        if not isinstance(command, dict):
            raise ProtocolViolation("connect without a command object")
        app, tc_url = command.get("app", ""), command.get("tcUrl", "")
        if not isinstance(app, str) or not isinstance(tc_url, str):
            raise ProtocolViolation("connect app or tcUrl is not a string")
        self._app = app.strip("/")
        self._connect_transaction = transaction
        self._state = _State.CONNECTING
        events.append(ConnectRequested(self._app, tc_url))

    def _on_create_stream(self, transaction: float) -> None:
        if self._next_stream_id > self._limits.max_message_streams:
            raise ProtocolViolation("too many createStream calls")
        stream_id = self._next_stream_id
        self._next_stream_id += 1
        self._reply(transaction, "_result", None, float(stream_id))

    def _on_publish(self, stream_id: int, arguments: list[Any], events: list[Event]) -> None:
        if self._state is not _State.CONNECTED:
            raise ProtocolViolation("publish sent twice on one connection")
        if not 0 < stream_id < self._next_stream_id:
            raise ProtocolViolation(f"publish on stream {stream_id}, which was never created")
        if not arguments or not isinstance(arguments[0], str):
            raise ProtocolViolation("publish without a stream name")
        key, _, query = arguments[0].partition("?")
        self._publish_stream_id = stream_id
        self._state = _State.PUBLISH_PENDING
        events.append(PublishRequested(stream_id, key, self._app, query))

    def _refuse_play(self, stream_id: int, arguments: list[Any], events: list[Event]) -> None:
        name = arguments[0] if arguments and isinstance(arguments[0], str) else ""
        description = "This server only accepts publishers."
        self._send_status(stream_id, _status("error", "NetStream.Play.Failed", description))
        self._state = _State.FINISHED
        events.append(PlayRefused(stream_id, name))

    def _on_unpublish(self, events: list[Event]) -> None:
        if self._state in (_State.PUBLISH_PENDING, _State.PUBLISHING):
            self._state = _State.UNPUBLISHED
            events.append(Unpublished(self._publish_stream_id))

    # --- answers from the owner -------------------------------------------------------

    def accept_connect(self) -> None:
        """Answer `connect` with success and our window, bandwidth and chunk size."""
        if self._state is not _State.CONNECTING:
            return
        self._send_control(WINDOW_ACK_SIZE, _U32.pack(SERVER_WINDOW))
        self._send_control(
            SET_PEER_BANDWIDTH, _PEER_BANDWIDTH.pack(SERVER_WINDOW, DYNAMIC_BANDWIDTH)
        )
        self._send_control(SET_CHUNK_SIZE, _U32.pack(SERVER_CHUNK_SIZE))
        self._writer.chunk_size = SERVER_CHUNK_SIZE
        success = _status("status", "NetConnection.Connect.Success", "Connection succeeded.")
        success["objectEncoding"] = 0.0
        self._reply(
            self._connect_transaction,
            "_result",
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
            success,
        )
        self._state = _State.CONNECTED

    def reject_connect(self, description: str) -> None:
        """Refuse `connect` (`NetConnection.Connect.Rejected`); the connection is finished."""
        if self._state is not _State.CONNECTING:
            return
        rejected = _status("error", "NetConnection.Connect.Rejected", description)
        self._reply(self._connect_transaction, "_error", None, rejected)
        self._state = _State.FINISHED

    def accept_publish(self, stream_id: int) -> None:
        """Start the publish: media is accepted from now on."""
        if self._state is not _State.PUBLISH_PENDING or stream_id != self._publish_stream_id:
            return
        self._send_control(USER_CONTROL, _USER_CONTROL.pack(STREAM_BEGIN, stream_id))
        started = _status("status", "NetStream.Publish.Start", "Publishing started.")
        self._send_status(stream_id, started)
        self._state = _State.PUBLISHING

    def reject_publish(
        self,
        stream_id: int,
        code: str = "NetStream.Publish.BadName",
        description: str = "Stream key refused.",
    ) -> None:
        """Refuse the publish with an error-level onStatus; the connection is finished."""
        if self._state is not _State.PUBLISH_PENDING or stream_id != self._publish_stream_id:
            return
        self._send_status(stream_id, _status("error", code, description))
        self._state = _State.FINISHED

    # --- output -----------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        self._outgoing += self._writer.encode(message)

    def _send_control(self, type_id: int, payload: bytes) -> None:
        self._send(Message(CONTROL_CSID, type_id, 0, 0, payload))

    def _reply(self, transaction: float, name: str, *values: Any) -> None:
        body = amf0.encode_values(name, transaction, *values)
        self._send(Message(COMMAND_CSID, COMMAND_AMF0, 0, 0, body))

    def _send_status(self, stream_id: int, status: dict[str, Any]) -> None:
        body = amf0.encode_values("onStatus", 0.0, None, status)
        self._send(Message(STREAM_CSID, COMMAND_AMF0, stream_id, 0, body))


def _status(level: str, code: str, description: str) -> dict[str, Any]:
    return {"level": level, "code": code, "description": description}
