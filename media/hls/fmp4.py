"""CMAF (fragmented MP4) boxes for HLS: an init segment and moof+mdat fragments.

Written by hand rather than through a muxer because Low-Latency HLS needs each partial
segment to be its own fragment, cut where the segmenter decides, with the sample
timing (B-frame composition offsets included) exactly as the publisher sent it.
ISO/IEC 14496-12 names the boxes; only the fields players read are filled in.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from media.packets import AudioConfig, VideoConfig

VIDEO_TRACK = 1
AUDIO_TRACK = 2
VIDEO_TIMESCALE = 90_000
MOVIE_TIMESCALE = 1000
MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
LANGUAGE_UND = 0x55C4
SYNC_FLAGS = 0x02000000  # depends on no other sample
NON_SYNC_FLAGS = 0x01010000  # depends on others, not a sync sample
TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800  # offset, per-sample fields
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
NAL_TYPE_SPS, NAL_TYPE_PPS, NAL_TYPE_AUD = 7, 8, 9
START_CODE = b"\x00\x00\x01"


@dataclass(frozen=True, slots=True)
class Sample:
    """One access unit or audio frame; times in the track's timescale."""

    data: bytes
    duration: int
    sync: bool
    composition_offset: int = 0


@dataclass(frozen=True, slots=True)
class TrackRun:
    """The samples of one track in a fragment, from `base_decode_time` on."""

    track_id: int
    base_decode_time: int
    samples: Sequence[Sample]


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags), *payload)


def init_segment(video: VideoConfig, audio: AudioConfig | None) -> bytes:
    """ftyp + moov: the video track, and the audio track when the stream has one."""
    tracks = [_video_trak(video)]
    if audio is not None:
        tracks.append(_audio_trak(audio))
    track_ids = [VIDEO_TRACK] + ([AUDIO_TRACK] if audio is not None else [])
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, 0),
        struct.pack(">IH10x", 0x10000, 0x0100),
        MATRIX,
        bytes(24),
        struct.pack(">I", max(track_ids) + 1),
    )
    trex = [
        full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))
        for track_id in track_ids
    ]
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfcisommp41")
    return ftyp + box(b"moov", mvhd, *tracks, box(b"mvex", *trex))


def fragment(sequence_number: int, runs: Sequence[TrackRun]) -> bytes:
    """moof + mdat holding `runs` (tracks with no samples are left out)."""
    runs = [run for run in runs if run.samples]
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence_number))
    moof_size = len(mfhd) + 8 + sum(len(_traf(run, 0)) for run in runs)
    offset = moof_size + 8  # past the mdat header
    trafs = []
    for run in runs:
        trafs.append(_traf(run, offset))
        offset += sum(len(sample.data) for sample in run.samples)
    mdat = box(b"mdat", *(sample.data for run in runs for sample in run.samples))
    return box(b"moof", mfhd, *trafs) + mdat


def length_prefixed(access_unit: bytes) -> bytes:
    """An Annex-B access unit as 4-byte length-prefixed NAL units, without the SPS, PPS
    and access unit delimiters (the init segment's avcC carries the parameter sets)."""
    out = []
    for nal in _nal_units(access_unit):
        if nal and nal[0] & 0x1F not in (NAL_TYPE_SPS, NAL_TYPE_PPS, NAL_TYPE_AUD):
            out.append(struct.pack(">I", len(nal)) + nal)
    return b"".join(out)


def _nal_units(access_unit: bytes) -> Iterable[bytes]:
    starts = []
    index = access_unit.find(START_CODE)
    while index >= 0:
        starts.append(index + len(START_CODE))
        index = access_unit.find(START_CODE, index + len(START_CODE))
    for position, start in enumerate(starts):
        end = starts[position + 1] - len(START_CODE) if position + 1 < len(starts) else None
        nal = access_unit[start:end]
        yield nal.rstrip(b"\x00") if end is not None else nal  # 4-byte start codes


def _traf(run: TrackRun, data_offset: int) -> bytes:
    tfhd = full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", run.track_id))
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", max(0, run.base_decode_time)))
    entries = b"".join(
        struct.pack(
            ">IIIi",
            sample.duration,
            len(sample.data),
            SYNC_FLAGS if sample.sync else NON_SYNC_FLAGS,
            sample.composition_offset,
        )
        for sample in run.samples
    )
    trun = full_box(
        b"trun", 1, TRUN_FLAGS, struct.pack(">Ii", len(run.samples), data_offset), entries
    )
    return box(b"traf", tfhd, tfdt, trun)


def _trak(
    track_id: int,
    handler: bytes,
    timescale: int,
    tkhd_tail: bytes,
    media_header: bytes,
    entry: bytes,
) -> bytes:
    tkhd = full_box(
        b"tkhd", 0, 0x3, struct.pack(">IIIII", 0, 0, track_id, 0, 0), bytes(8), tkhd_tail
    )
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, LANGUAGE_UND, 0))
    name = b"Stream Cart " + handler + b"\x00"
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), name)
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, struct.pack(">I", 0)),
    )
    minf = box(b"minf", media_header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _video_trak(config: VideoConfig) -> bytes:
    avc1 = box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HHIIIH", config.width, config.height, 0x480000, 0x480000, 0, 1),
        bytes(32),
        struct.pack(">Hh", 0x18, -1),
        box(b"avcC", config.avcc),
    )
    tail = (
        struct.pack(">hhH2x", 0, 0, 0)
        + MATRIX
        + struct.pack(">II", config.width << 16, config.height << 16)
    )
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    return _trak(VIDEO_TRACK, b"vide", VIDEO_TIMESCALE, tail, vmhd, avc1)


def _audio_trak(config: AudioConfig) -> bytes:
    rate = config.sample_rate if config.sample_rate < 0x10000 else 0
    mp4a = box(
        b"mp4a",
        bytes(6),
        struct.pack(">H", 1),
        bytes(8),
        struct.pack(">HHHHI", config.channels, 16, 0, 0, rate << 16),
        _esds(config.asc),
    )
    tail = struct.pack(">hhH2x", 0, 0, 0x0100) + MATRIX + struct.pack(">II", 0, 0)
    smhd = full_box(b"smhd", 0, 0, struct.pack(">hH", 0, 0))
    return _trak(AUDIO_TRACK, b"soun", config.sample_rate, tail, smhd, mp4a)


def _esds(asc: bytes) -> bytes:
    """The MPEG-4 ES descriptor: AAC (object type 0x40), audio stream, its ASC."""
    decoder_specific = _descriptor(5, asc)
    decoder_config = _descriptor(
        4, struct.pack(">BB3sII", 0x40, 0x15, bytes(3), 0, 0) + decoder_specific
    )
    sl_config = _descriptor(6, b"\x02")
    return full_box(
        b"esds",
        0,
        0,
        _descriptor(3, struct.pack(">HB", AUDIO_TRACK, 0) + decoder_config + sl_config),
    )


def _descriptor(tag: int, payload: bytes) -> bytes:
    size = len(payload)
    length = bytes(
        [
            0x80 | (size >> 21 & 0x7F),
            0x80 | (size >> 14 & 0x7F),
            0x80 | (size >> 7 & 0x7F),
            size & 0x7F,
        ]
    )
    return bytes([tag]) + length + payload
