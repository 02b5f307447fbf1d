"""HLS media playlists (RFC 8216bis), live with Low-Latency tags or plain.

One playlist serves both kinds of player: the spec has clients ignore tags they do not
know, so a player without Low-Latency support reads the same text as a plain live
playlist of whole segments (the segment still being written appears only as parts,
which it skips). Built from plain values so a replay (VOD) playlist can use it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from media.hls.dateranges import DateRange, program_date_time

VERSION = 6  # EXT-X-MAP in a playlist of fragmented MP4 segments
PART_HOLD_BACK_PARTS = 3  # what the specification recommends
LEAST_HOLD_BACK_PARTS = 2  # what it allows at least


def checked_hold_back(parts: float) -> float:
    """PART-HOLD-BACK in part targets, refused below the specification's floor."""
    if parts < LEAST_HOLD_BACK_PARTS:
        raise ValueError(f"PART-HOLD-BACK must be {LEAST_HOLD_BACK_PARTS} parts or more")
    return parts


@dataclass(frozen=True, slots=True)
class PartEntry:
    uri: str
    duration: float
    independent: bool


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """A segment; an incomplete one (still being written) is listed by its parts only.
    `init_uri`: its init segment, when not the one of the segment before;
    `discontinuity`: its encoding parameters differ from those of the one before."""

    uri: str
    duration: float
    program_date_time: datetime | None = None
    parts: Sequence[PartEntry] = ()
    complete: bool = True
    init_uri: str | None = None
    discontinuity: bool = False


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    segments: Sequence[SegmentEntry]
    target_duration: int
    part_target: float | None = None  # None: no Low-Latency tags
    dateranges: Sequence[DateRange] = ()
    preload_hint: str | None = None
    ended: bool = False
    playlist_type: str | None = None  # "VOD" for a replay
    init_uri: str = "init.mp4"  # the first segment's
    hold_back_parts: float = PART_HOLD_BACK_PARTS  # PART-HOLD-BACK, in part targets

    media_sequence: int = 0  # the number of the first segment listed
    discontinuity_sequence: int = 0  # discontinuities before the first segment listed

    def render(self) -> str:
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}"]
        lines.append(f"#EXT-X-TARGETDURATION:{self.target_duration}")
        if self.playlist_type is not None:
            lines.append(f"#EXT-X-PLAYLIST-TYPE:{self.playlist_type}")
        if self.part_target is not None:
            hold_back = self.hold_back_parts * self.part_target
            lines.append(f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}")
            lines.append(
                f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={hold_back:.3f}"
            )
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}")
        if self.discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}")
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        lines.append(f'#EXT-X-MAP:URI="{self.init_uri}"')
        lines.extend(daterange.render() for daterange in self._dateranges_in_window())
        init_uri = self.init_uri
        for segment in self.segments:
            if not segment.complete and not (segment.parts and self.part_target is not None):
                continue
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if segment.init_uri is not None and segment.init_uri != init_uri:
                init_uri = segment.init_uri
                lines.append(f'#EXT-X-MAP:URI="{init_uri}"')
            if segment.program_date_time is not None:
                lines.append(
                    f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(segment.program_date_time)}"
                )
            if self.part_target is not None:
                lines.extend(_part(part) for part in segment.parts)
            if segment.complete:
                lines.append(f"#EXTINF:{segment.duration:.3f},")
                lines.append(segment.uri)
        if self.preload_hint is not None and self.part_target is not None:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{self.preload_hint}"')
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _dateranges_in_window(self) -> list[DateRange]:
        """Those not over before the first segment (all, if the playlist has no clock);
        one starting ahead of the last frame is kept, for the player to reach."""
        start = next((s.program_date_time for s in self.segments if s.program_date_time), None)
        if start is None:
            return list(self.dateranges)
        return [d for d in self.dateranges if d.end is None or d.end >= start]


def _part(part: PartEntry) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={part.duration:.3f},URI="{part.uri}"{independent}'
