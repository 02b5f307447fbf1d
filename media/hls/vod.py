"""A VOD playlist over a fragmented MP4 as it is on disk (the recordings): the header
(ftyp + moov) is the EXT-X-MAP, each moof + mdat pair a segment addressed by
EXT-X-BYTERANGE, so the one file serves both the MP4 player and HLS players.

Only the box headers are read: top-level boxes, the video track's timescale in moov and
each fragment's decode time (tfdt) and sample durations (trun) in its moof. A fragment
still being written (its mdat shorter than declared) is left out.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import BinaryIO

from media.hls.dateranges import DateRange, program_date_time
from media.hls.playlist import VERSION

CONTAINERS = {b"moov", b"trak", b"mdia", b"moof", b"traf", b"mvex"}
TFHD_DEFAULT_DURATION = 0x08
TRUN_DATA_OFFSET = 0x01
TRUN_FIRST_FLAGS = 0x04
TRUN_DURATION = 0x100


@dataclass(frozen=True, slots=True)
class Fragment:
    offset: int
    size: int
    start: float  # seconds from the file's time zero
    duration: float


@dataclass(frozen=True, slots=True)
class FragmentedMp4:
    header_size: int  # ftyp + moov, from offset 0
    fragments: list[Fragment]


def scan(file: BinaryIO) -> FragmentedMp4:
    """The byte ranges and times of a fragmented MP4's fragments (ValueError if it has
    no moov or no video track)."""
    length = file.seek(0, 2)
    header_size, timescale, video_track, defaults = 0, 0, 0, {}
    fragments: list[Fragment] = []
    moof: Fragment | None = None  # the last moof, until its mdat is found whole
    offset = 0
    while offset + 8 <= length:
        kind, size, body = _read_box(file, offset, length)
        if size < 8 or offset + size > length:
            break  # a box still being written (or not a box)
        if kind == b"moov":
            header_size = offset + size
            timescale, video_track, defaults = _video_track(file.read(body))
        elif kind == b"moof" and timescale:
            start, ticks = _fragment_times(file.read(body), video_track, defaults)
            moof = Fragment(offset, size, start / timescale, ticks / timescale)
        elif kind == b"mdat" and moof is not None and moof.offset + moof.size == offset:
            fragments.append(Fragment(moof.offset, moof.size + size, moof.start, moof.duration))
            moof = None
        offset += size
    if not header_size or not timescale:
        raise ValueError("not a fragmented MP4 with a video track")
    return FragmentedMp4(header_size, _continuous(fragments))


def vod_playlist(
    video_uri: str,
    mp4: FragmentedMp4,
    started: datetime,
    dateranges: Iterable[DateRange] = (),
) -> str:
    """`#EXT-X-PLAYLIST-TYPE:VOD` over `video_uri`; `started` is the wall-clock moment
    of the file's time zero (each segment gets its program date-time from it). A date
    range still open when the recording stops ends there."""
    last = mp4.fragments[-1] if mp4.fragments else None
    finished = started + timedelta(seconds=last.start + last.duration if last else 0)
    target = max((math.ceil(fragment.duration) for fragment in mp4.fragments), default=1)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{max(1, target)}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{video_uri}",BYTERANGE="{mp4.header_size}@0"',
    ]
    lines.extend(_ended_by(daterange, finished).render() for daterange in dateranges)
    for fragment in mp4.fragments:
        moment = started + timedelta(seconds=fragment.start)
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(moment)}")
        lines.append(f"#EXTINF:{fragment.duration:.3f},")
        lines.append(f"#EXT-X-BYTERANGE:{fragment.size}@{fragment.offset}")
        lines.append(video_uri)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _ended_by(daterange: DateRange, finished: datetime) -> DateRange:
    if daterange.end is not None:
        return daterange
    return replace(daterange, end=max(finished, daterange.start))


def _continuous(fragments: list[Fragment]) -> list[Fragment]:
    """Each fragment lasts until the next one starts (its own samples' durations only
    for the last): no gap or overlap between segments."""
    joined = [
        replace(fragment, duration=following.start - fragment.start)
        for fragment, following in pairwise(fragments)
    ]
    return joined + fragments[-1:]


def _read_box(file: BinaryIO, offset: int, length: int) -> tuple[bytes, int, int]:
    """A top-level box's type, total size and body size; the file is left at its body."""
    file.seek(offset)
    size, kind = struct.unpack(">I4s", file.read(8))
    header = 8
    if size == 1:
        (size,) = struct.unpack(">Q", file.read(8))
        header = 16
    elif size == 0:
        size = length - offset
    return kind, size, size - header


def _boxes(data: bytes, offset: int = 0, end: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """The boxes inside `data[offset:end]`, descending into containers (depth first)."""
    end = len(data) if end is None else end
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        if size < header or offset + size > end:
            return
        yield kind, data[offset + header : offset + size]
        if kind in CONTAINERS:
            yield from _boxes(data, offset + header, offset + size)
        offset += size


def _video_track(moov: bytes) -> tuple[int, int, dict[int, int]]:
    """The video track's timescale and id, and each track's default sample duration."""
    timescale = track_id = current_track = current_scale = 0
    defaults: dict[int, int] = {}
    for kind, body in _boxes(moov):
        if kind == b"tkhd":
            current_track = struct.unpack_from(">I", body, 12 if body[0] == 0 else 20)[0]
        elif kind == b"mdhd":
            current_scale = struct.unpack_from(">I", body, 12 if body[0] == 0 else 20)[0]
        elif kind == b"hdlr" and body[8:12] == b"vide" and not track_id:
            timescale, track_id = current_scale, current_track
        elif kind == b"trex":
            trex_track, _, duration = struct.unpack_from(">III", body, 4)
            defaults[trex_track] = duration
    return timescale, track_id, defaults


def _fragment_times(moof: bytes, video_track: int, defaults: dict[int, int]) -> tuple[int, int]:
    """The video track's decode time at the fragment's start and its samples' total
    duration, in the track's timescale."""
    start = total = 0
    track = default = 0
    for kind, body in _boxes(moof):
        if kind == b"tfhd":
            flags = int.from_bytes(body[1:4], "big")
            track = struct.unpack_from(">I", body, 4)[0]
            default = defaults.get(track, 0)
            if flags & TFHD_DEFAULT_DURATION:
                default = struct.unpack_from(">I", body, 8 + _tfhd_skip(flags))[0]
        elif track != video_track:
            continue
        elif kind == b"tfdt":
            start = struct.unpack_from(">Q" if body[0] == 1 else ">I", body, 4)[0]
        elif kind == b"trun":
            total += _trun_duration(body, default)
    return start, total


def _tfhd_skip(flags: int) -> int:
    """Bytes of the optional tfhd fields before default-sample-duration."""
    return (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)


def _trun_duration(trun: bytes, default: int) -> int:
    flags = int.from_bytes(trun[1:4], "big")
    (count,) = struct.unpack_from(">I", trun, 4)
    if not flags & TRUN_DURATION:
        return count * default
    position = 8 + (4 if flags & TRUN_DATA_OFFSET else 0) + (4 if flags & TRUN_FIRST_FLAGS else 0)
    per_sample = 4 * bin(flags & 0xF00).count("1")
    return sum(
        struct.unpack_from(">I", trun, position + index * per_sample)[0] for index in range(count)
    )
