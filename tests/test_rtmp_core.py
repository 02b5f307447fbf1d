"""The sans-IO RTMP core, byte for byte: handshake, chunk headers, control messages,
commands, limits and AMF0."""

from __future__ import annotations

import math
import struct

import pytest

from rtmp_ingest import (
    AudioData,
    ConnectRequested,
    Limits,
    Metadata,
    PlayRefused,
    ProtocolError,
    PublishRequested,
    RtmpConnection,
    Unpublished,
    VideoData,
)
from rtmp_ingest.amf0 import UNDEFINED, AmfDate, EcmaArray, decode_values, encode_values
from rtmp_ingest.errors import ProtocolViolation
from rtmp_ingest.messages import (
    ABORT,
    ACKNOWLEDGEMENT,
    AUDIO,
    DATA_AMF0,
    SET_CHUNK_SIZE,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
)
from tests.rtmp_support import (
    C0_C1,
    C1,
    C2,
    STREAM_KEY,
    chunked,
    command,
    connect_command,
    control,
    handshaken,
    header,
    publish_commands,
    publishing,
)

U32 = struct.Struct(">I")


def media(events):
    return [(type(e).__name__, e.timestamp_ms, e.payload) for e in events]


# --- handshake ------------------------------------------------------------------------


def test_handshake_answers_s0_s1_s2_echoing_c1_even_byte_by_byte():
    connection = RtmpConnection()
    for byte in C0_C1:
        assert connection.receive_data(bytes([byte])) == []
    reply = connection.data_to_send()
    assert reply[0] == 3
    assert len(reply) == 1 + 1536 * 2
    assert reply[1 + 1536 :] == C1[:1536]
    assert connection.receive_data(C2[:100]) == []
    events = connection.receive_data(C2[100:] + connect_command())
    assert events == [ConnectRequested("live", "rtmp://127.0.0.1/live")]


@pytest.mark.parametrize("version", [0, 6, 0xFF])
def test_handshake_refuses_other_versions(version):
    connection = RtmpConnection()
    events = connection.receive_data(bytes([version]) + C1)
    assert len(events) == 1 and isinstance(events[0], ProtocolError)
    assert "version" in events[0].reason
    assert connection.finished
    assert connection.receive_data(C2) == []


# --- connect and publish ---------------------------------------------------------------


def test_connect_is_answered_with_window_bandwidth_chunk_size_and_success():
    connection, output = handshaken()
    assert connection.receive_data(connect_command("live/")) == [
        ConnectRequested("live", "rtmp://127.0.0.1/live/")
    ]
    assert connection.data_to_send() == b""  # nothing until the owner decides
    connection.accept_connect()
    messages = output.feed(connection.data_to_send())
    assert [m.type_id for m in messages][:2] == [WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH]
    assert output.reader.chunk_size == 4096  # Set Chunk Size was applied by the reader
    result = output.commands()[0]
    assert result[0] == "_result" and result[1] == 1.0
    assert result[3]["code"] == "NetConnection.Connect.Success"


def test_reject_connect_sends_error_and_finishes():
    connection, output = handshaken()
    connection.receive_data(connect_command())
    connection.reject_connect("The server is full.")
    output.feed(connection.data_to_send())
    reply = output.commands()[0]
    assert reply[0] == "_error"
    assert reply[3] == {
        "level": "error",
        "code": "NetConnection.Connect.Rejected",
        "description": "The server is full.",
    }
    assert connection.finished
    assert connection.receive_data(publish_commands()) == []


def test_publish_flow_answers_create_stream_and_reports_key_and_query():
    connection, output = handshaken()
    connection.receive_data(connect_command())
    connection.accept_connect()
    assert connection.receive_data(publish_commands()) == []
    output.feed(connection.data_to_send())
    results = [c for c in output.commands() if c[0] == "_result"]
    assert [r[1] for r in results] == [1.0, 2.0, 3.0, 4.0]
    assert results[-1][3] == 1.0  # createStream's stream id
    events = connection.receive_data(
        command("publish", 5.0, None, "abc?token=x", "live", stream_id=1)
    )
    assert events == [PublishRequested(1, "abc", "live", "token=x")]
    connection.accept_publish(1)
    output.feed(connection.data_to_send())
    assert output.statuses()[-1]["code"] == "NetStream.Publish.Start"
    assert connection.publishing


def test_reject_publish_sends_bad_name_and_finishes():
    connection, output = handshaken()
    connection.receive_data(connect_command())
    connection.accept_connect()
    connection.receive_data(publish_commands())
    connection.receive_data(command("publish", 5.0, None, "wrong", "live", stream_id=1))
    connection.reject_publish(1, "NetStream.Publish.BadName", "Unknown stream key.")
    output.feed(connection.data_to_send())
    status = output.statuses()[-1]
    assert status == {
        "level": "error",
        "code": "NetStream.Publish.BadName",
        "description": "Unknown stream key.",
    }
    assert connection.finished
    assert connection.receive_data(chunked(4, VIDEO, b"\x17\x00", stream_id=1)) == []


def test_media_before_publish_is_accepted_is_a_protocol_error():
    connection, _ = handshaken()
    connection.receive_data(connect_command())
    connection.accept_connect()
    connection.receive_data(publish_commands())
    connection.receive_data(command("publish", 5.0, None, STREAM_KEY, "live", stream_id=1))
    events = connection.receive_data(chunked(4, VIDEO, b"\x17\x00\x00\x00\x00", stream_id=1))
    assert isinstance(events[0], ProtocolError)
    assert connection.finished


def test_commands_before_connect_are_refused():
    connection, _ = handshaken()
    events = connection.receive_data(command("createStream", 2.0, None))
    assert isinstance(events[0], ProtocolError)


def test_play_is_refused_with_an_error_status():
    connection, output = handshaken()
    connection.receive_data(connect_command())
    connection.accept_connect()
    connection.receive_data(command("createStream", 2.0, None))
    events = connection.receive_data(command("play", 3.0, None, "somekey", stream_id=1))
    assert events == [PlayRefused(1, "somekey")]
    output.feed(connection.data_to_send())
    assert output.statuses()[-1]["code"] == "NetStream.Play.Failed"
    assert output.statuses()[-1]["level"] == "error"
    assert connection.finished


def test_metadata_and_media_then_unpublish():
    connection, _ = publishing()
    metadata = encode_values("@setDataFrame", "onMetaData", EcmaArray(width=1280.0, fps=30.0))
    events = connection.receive_data(
        chunked(4, DATA_AMF0, metadata, stream_id=1)
        + chunked(4, VIDEO, b"\x17\x00seq", stream_id=1, timestamp=0)
        + chunked(6, AUDIO, b"\xaf\x00\x12\x10", stream_id=1, timestamp=0)
    )
    assert events == [
        Metadata({"width": 1280.0, "fps": 30.0}),
        VideoData(0, b"\x17\x00seq"),
        AudioData(0, b"\xaf\x00\x12\x10"),
    ]
    events = connection.receive_data(
        command("FCUnpublish", 6.0, None, STREAM_KEY) + command("deleteStream", 7.0, None, 1.0)
    )
    assert events == [Unpublished(1)]
    late = connection.receive_data(chunked(4, VIDEO, b"\x17\x01", stream_id=1))
    assert isinstance(late[0], ProtocolError)


def test_media_on_another_message_stream_is_refused():
    connection, _ = publishing()
    events = connection.receive_data(chunked(4, VIDEO, b"\x17\x01", stream_id=7))
    assert isinstance(events[0], ProtocolError)


def test_unknown_command_with_a_transaction_gets_an_error_reply():
    connection, output = publishing()
    assert connection.receive_data(command("getStreamLength", 9.0, None, "x")) == []
    output.feed(connection.data_to_send())
    reply = output.commands()[-1]
    assert reply[:2] == ["_error", 9.0]


# --- chunk headers ---------------------------------------------------------------------


def test_all_four_header_types_carry_timestamps_lengths_and_types():
    connection, _ = publishing()
    data = (
        header(0, 4, timestamp=1000, length=3, type_id=VIDEO, stream_id=1)
        + b"AAA"
        + header(1, 4, timestamp=33, length=4, type_id=AUDIO)  # delta, new length and type
        + b"BBBB"
        + header(2, 4, timestamp=20)  # delta only; length and type as before
        + b"CCCC"
        + header(3, 4)  # same delta again
        + b"DDDD"
    )
    assert media(connection.receive_data(data)) == [
        ("VideoData", 1000, b"AAA"),
        ("AudioData", 1033, b"BBBB"),
        ("AudioData", 1053, b"CCCC"),
        ("AudioData", 1073, b"DDDD"),
    ]


def test_type_3_after_type_0_reuses_the_type_0_timestamp_as_delta():
    connection, _ = publishing()
    data = header(0, 4, timestamp=40, length=1, type_id=VIDEO, stream_id=1) + b"a"
    data += header(3, 4) + b"b"
    assert media(connection.receive_data(data)) == [
        ("VideoData", 40, b"a"),
        ("VideoData", 80, b"b"),
    ]


def test_one_two_and_three_byte_basic_headers():
    connection, _ = publishing()
    csids = [2 + 1, 63, 64, 319, 320, 65599]
    data = b"".join(
        chunked(csid, VIDEO, bytes([i]), stream_id=1, timestamp=i) for i, csid in enumerate(csids)
    )
    assert media(connection.receive_data(data)) == [
        ("VideoData", i, bytes([i])) for i in range(len(csids))
    ]


def test_extended_timestamps_on_type_0_type_1_and_type_3_chunks():
    connection, _ = publishing()
    payload = bytes(range(256)) * 2  # four 128-byte chunks
    start = 0x01000000
    data = chunked(4, VIDEO, payload, stream_id=1, timestamp=start)
    data += header(1, 4, timestamp=0xFFFFFF + 5, length=3, type_id=VIDEO) + b"xyz"
    data += header(3, 4, extended=True, timestamp=0xFFFFFF + 5) + b"uvw"
    assert media(connection.receive_data(data)) == [
        ("VideoData", start, payload),
        ("VideoData", start + 0xFFFFFF + 5, b"xyz"),
        ("VideoData", start + 2 * (0xFFFFFF + 5), b"uvw"),
    ]


def test_timestamps_wrap_at_32_bits():
    connection, _ = publishing()
    data = chunked(4, AUDIO, b"a", stream_id=1, timestamp=0xFFFFFFF0)
    data += header(2, 4, timestamp=0x20) + b"b"
    events = connection.receive_data(data)
    assert [e.timestamp_ms for e in events] == [0xFFFFFFF0, 0x10]


def test_chunk_size_change_mid_stream_applies_to_the_next_chunk():
    connection, _ = publishing()
    big = bytes(range(256)) * 20  # 5120 bytes
    data = chunked(4, VIDEO, big[:300], stream_id=1)  # 128-byte chunks
    data += control(SET_CHUNK_SIZE, U32.pack(4096))
    data += chunked(4, VIDEO, big, stream_id=1, timestamp=33, chunk_size=4096)
    events = connection.receive_data(data)
    assert [e.payload for e in events] == [big[:300], big]


def test_interleaved_chunk_streams_reassemble_separately():
    connection, _ = publishing()
    video = bytes([1]) * 300
    audio = bytes([2]) * 200
    v = chunked(4, VIDEO, video, stream_id=1, timestamp=10)
    a = chunked(6, AUDIO, audio, stream_id=1, timestamp=11)
    # split each into its chunks (header sizes: 12 then 1 for csid < 64)
    v_chunks = [v[:140], v[140:269], v[269:]]
    a_chunks = [a[:140], a[140:]]
    data = v_chunks[0] + a_chunks[0] + v_chunks[1] + a_chunks[1] + v_chunks[2]
    assert media(connection.receive_data(data)) == [
        ("AudioData", 11, audio),
        ("VideoData", 10, video),
    ]


def test_any_split_of_the_input_gives_the_same_events():
    data = chunked(4, VIDEO, bytes(range(200)) * 3, stream_id=1, timestamp=0xFFFFFF + 1)
    data += chunked(320, AUDIO, b"audio", stream_id=1, timestamp=7)
    whole, _ = publishing()
    expected = whole.receive_data(data)
    for step in (1, 2, 7, 129):
        connection, _ = publishing()
        events = []
        for offset in range(0, len(data), step):
            events += connection.receive_data(data[offset : offset + step])
        assert events == expected


def test_abort_discards_a_partial_message():
    connection, _ = publishing()
    data = chunked(4, VIDEO, bytes(300), stream_id=1)[:140]  # first chunk only
    data += control(ABORT, U32.pack(4))
    data += chunked(4, VIDEO, b"fresh", stream_id=1, timestamp=5)
    assert media(connection.receive_data(data)) == [("VideoData", 5, b"fresh")]
    assert connection.buffered_bytes == 0


def test_acknowledgement_is_sent_when_the_peer_window_is_reached():
    connection, output = publishing()
    connection.receive_data(control(WINDOW_ACK_SIZE, U32.pack(1000)))
    output.feed(connection.data_to_send())
    assert not [m for m in output.messages if m.type_id == ACKNOWLEDGEMENT]
    payload = bytes(600)
    connection.receive_data(chunked(4, VIDEO, payload, stream_id=1))
    connection.receive_data(chunked(4, VIDEO, payload, stream_id=1))
    acks = [m for m in output.feed(connection.data_to_send()) if m.type_id == ACKNOWLEDGEMENT]
    assert len(acks) == 1
    assert U32.unpack(acks[0].payload)[0] >= 1000


def test_ping_request_gets_a_ping_response_with_the_same_time():
    connection, output = publishing()
    connection.receive_data(control(USER_CONTROL, struct.pack(">HI", 6, 123456)))
    replies = [m for m in output.feed(connection.data_to_send()) if m.type_id == USER_CONTROL]
    assert [struct.unpack(">HI", m.payload) for m in replies] == [(7, 123456)]


# --- limits and bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (control(SET_CHUNK_SIZE, U32.pack(0)), "chunk size"),
        (control(SET_CHUNK_SIZE, U32.pack(0x80000000)), "chunk size"),
        (control(SET_CHUNK_SIZE, U32.pack(1 << 20)), "chunk size"),
        (control(SET_CHUNK_SIZE, b"\x00\x10"), "4 bytes"),
        (header(0, 4, length=(1 << 20) + 1, type_id=VIDEO, stream_id=1), "over the limit"),
        (header(1, 40, timestamp=1, length=1, type_id=VIDEO) + b"x", "without a full header"),
        (chunked(4, VIDEO, bytes(300), stream_id=1)[:140] + header(0, 4), "inside a message"),
        (control(USER_CONTROL, b"\x00"), "too short"),
        (control(WINDOW_ACK_SIZE, b"\x00"), "4 bytes"),
        (chunked(3, 20, b"\x05\x05"), "command without a name"),
        (chunked(3, 20, b"\x02\xff\xff"), "truncated"),
        (chunked(3, 17, b"\x11garbage"), "AMF3"),
    ],
)
def test_bad_input_is_a_protocol_error(data, reason):
    limits = Limits(max_chunk_size=65536, max_message_length=1 << 20)
    connection, _ = publishing(limits)
    events = connection.receive_data(data)
    assert len(events) == 1 and isinstance(events[0], ProtocolError)
    assert reason in events[0].reason
    assert connection.finished
    assert connection.receive_data(chunked(4, VIDEO, b"x", stream_id=1)) == []


def test_too_many_chunk_streams():
    connection, _ = publishing(Limits(max_chunk_streams=4))
    data = b"".join(chunked(10 + i, VIDEO, b"x", stream_id=1) for i in range(4))
    events = connection.receive_data(data)
    assert isinstance(events[-1], ProtocolError)
    assert "chunk streams" in events[-1].reason


def test_partial_messages_are_bounded_in_total():
    connection, _ = publishing(Limits(max_buffered_bytes=1000))
    data = b"".join(chunked(4 + i, VIDEO, bytes(500), stream_id=1)[:140] for i in range(10))
    events = connection.receive_data(data)
    assert isinstance(events[-1], ProtocolError)
    assert "unfinished messages" in events[-1].reason
    assert connection.buffered_bytes == 0  # a finished connection holds nothing


def test_too_many_create_stream_calls():
    connection, _ = handshaken()
    connection.receive_data(connect_command())
    connection.accept_connect()
    calls = b"".join(command("createStream", 2.0 + i, None) for i in range(5))
    events = connection.receive_data(calls)
    assert isinstance(events[-1], ProtocolError)


def test_second_publish_on_one_connection_is_refused():
    connection, _ = publishing()
    events = connection.receive_data(command("publish", 9.0, None, "other", stream_id=1))
    assert isinstance(events[0], ProtocolError)


def test_limits_validate_themselves():
    with pytest.raises(ValueError):
        Limits(max_chunk_size=0)
    with pytest.raises(ValueError):
        Limits(max_amf_items=0)


# --- AMF0 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        0.0,
        -1.5,
        math.inf,
        True,
        False,
        "",
        "xin chào",
        "x" * 70000,  # long string
        None,
        UNDEFINED,
        {"a": 1.0, "nested": {"b": [1.0, "two", None]}},
        EcmaArray(duration=0.0, encoder="obs"),
        [],
        [1.0, [2.0, [3.0]]],
        AmfDate(1700000000000.0, 0),
    ],
)
def test_amf0_round_trips(value):
    assert decode_values(encode_values(value)) == [value]


def test_amf0_keeps_object_and_ecma_array_apart():
    decoded = decode_values(encode_values({"k": 1.0}, EcmaArray(k=1.0)))
    assert type(decoded[0]) is dict
    assert type(decoded[1]) is EcmaArray


def test_amf0_encodes_ints_as_numbers_and_refuses_unknown_types():
    assert decode_values(encode_values(3)) == [3.0]
    with pytest.raises(TypeError):
        encode_values(object())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x01", "truncated"),
        (b"\x02\x00\x05ab", "truncated"),
        (b"\x0c\xff\xff\xff\xffab", "truncated"),
        (b"\x02\x00\x02\xff\xfe", "UTF-8"),
        (b"\x03\x00\x01a\x05", "truncated"),  # object without its end
        (b"\x09", "object end"),
        (b"\x04", "marker"),
        (b"\x07\x00\x01", "marker"),  # references are not accepted
        (b"\x11\x00", "marker"),
        (b"\x0a\xff\xff\xff\xff\x05", "strict array"),
        (b"\x0a" * 1 + b"\x00\x00\x00\x01" + b"\x0a\x00\x00\x00\x01" * 40 + b"\x05", "deeply"),
        (b"\x05" * 5000, "too many"),
    ],
)
def test_amf0_garbage_raises_a_protocol_violation(data, reason):
    with pytest.raises(ProtocolViolation, match=reason):
        decode_values(data)
