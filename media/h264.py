"""H.264 bitstream helpers: the avcC record, SPS fields, and AVCC -> Annex-B.

RTMP carries NAL units length-prefixed (AVCC); aiortc, decoders fed without extradata
and late joiners need Annex-B start codes with SPS/PPS in front of every IDR.
"""

from __future__ import annotations

from dataclasses import dataclass

from media.errors import MediaFormatError

START_CODE = b"\x00\x00\x00\x01"

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

PROFILE_NAMES = {
    44: "CAVLC 4:4:4 Intra",
    66: "Baseline",
    77: "Main",
    88: "Extended",
    100: "High",
    110: "High 10",
    122: "High 4:2:2",
    244: "High 4:4:4 Predictive",
}
# Profiles whose SPS carries chroma format, bit depths and scaling matrices.
HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
MAX_EXP_GOLOMB_ZEROS = 31


@dataclass(frozen=True, slots=True)
class SpsInfo:
    profile_idc: int
    constraint_flags: int
    level_idc: int
    width: int
    height: int

    @property
    def profile(self) -> str:
        if self.profile_idc == 66 and self.constraint_flags & 0x40:
            return "Constrained Baseline"
        return PROFILE_NAMES.get(self.profile_idc, f"profile {self.profile_idc}")

    @property
    def level(self) -> str:
        return f"{self.level_idc // 10}.{self.level_idc % 10}"


@dataclass(frozen=True, slots=True)
class AvcDecoderConfig:
    """The parts of an AVCDecoderConfigurationRecord the stream needs."""

    nal_length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]


def nal_type(nal: bytes | memoryview) -> int:
    return nal[0] & 0x1F


class BitReader:
    """Reads an RBSP bit by bit, with the Exp-Golomb codes of the H.264 syntax."""

    def __init__(self, rbsp: bytes) -> None:
        self._value = int.from_bytes(rbsp, "big")
        self._remaining = len(rbsp) * 8

    def bits(self, count: int) -> int:
        if count > self._remaining:
            raise MediaFormatError("SPS ends early")
        self._remaining -= count
        return (self._value >> self._remaining) & ((1 << count) - 1)

    def flag(self) -> bool:
        return self.bits(1) == 1

    def ue(self) -> int:
        zeros = 0
        while self.bits(1) == 0:
            zeros += 1
            if zeros > MAX_EXP_GOLOMB_ZEROS:
                raise MediaFormatError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(reader: BitReader, size: int) -> None:
    last, next_scale = 8, 8
    for _ in range(size):
        if next_scale != 0:
            next_scale = (last + reader.se() + 256) % 256
        last = next_scale or last


def parse_sps(nal: bytes) -> SpsInfo:
    """Profile, level and the displayed resolution (after frame cropping) of an SPS."""
    if len(nal) < 4 or nal_type(nal) != NAL_SPS:
        raise MediaFormatError("not an SPS NAL unit")
    profile_idc, constraint_flags, level_idc = nal[1], nal[2], nal[3]
    reader = BitReader(unescape_rbsp(nal[4:]))
    reader.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_colour_planes = 1, False
    if profile_idc in HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc > 3:
            raise MediaFormatError("bad chroma_format_idc")
        if chroma_format_idc == 3:
            separate_colour_planes = reader.flag()
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.flag()  # qpprime_y_zero_transform_bypass_flag
        if reader.flag():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if reader.flag():
                    _skip_scaling_list(reader, 16 if index < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    pic_order_cnt_type = reader.ue()
    if pic_order_cnt_type == 0:
        reader.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif pic_order_cnt_type == 1:
        reader.flag()  # delta_pic_order_always_zero_flag
        reader.se()  # offset_for_non_ref_pic
        reader.se()  # offset_for_top_to_bottom_field
        cycle = reader.ue()
        if cycle > 255:
            raise MediaFormatError("bad num_ref_frames_in_pic_order_cnt_cycle")
        for _ in range(cycle):
            reader.se()
    elif pic_order_cnt_type != 2:
        raise MediaFormatError("bad pic_order_cnt_type")
    reader.ue()  # max_num_ref_frames
    reader.flag()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = reader.ue() + 1
    height_map_units = reader.ue() + 1
    frame_mbs_only = reader.flag()
    if not frame_mbs_only:
        reader.flag()  # mb_adaptive_frame_field_flag
    reader.flag()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if reader.flag():  # frame_cropping_flag
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        chroma_array_type = 0 if separate_colour_planes else chroma_format_idc
        sub_width = 2 if chroma_array_type in (1, 2) else 1
        sub_height = 2 if chroma_array_type == 1 else 1
        crop_x = sub_width if chroma_array_type else 1
        crop_y = (sub_height if chroma_array_type else 1) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise MediaFormatError("SPS cropping leaves no picture")
    return SpsInfo(profile_idc, constraint_flags, level_idc, width, height)


def _read_parameter_sets(record: bytes, offset: int, count: int) -> tuple[tuple[bytes, ...], int]:
    sets = []
    for _ in range(count):
        if offset + 2 > len(record):
            raise MediaFormatError("avcC ends inside a parameter set")
        size = int.from_bytes(record[offset : offset + 2], "big")
        offset += 2
        if size == 0 or offset + size > len(record):
            raise MediaFormatError("avcC parameter set length out of range")
        sets.append(bytes(record[offset : offset + size]))
        offset += size
    return tuple(sets), offset


def parse_avcc(record: bytes) -> AvcDecoderConfig:
    """Parse an AVCDecoderConfigurationRecord (ISO 14496-15)."""
    if len(record) < 7 or record[0] != 1:
        raise MediaFormatError("not an avcC record")
    nal_length_size = (record[4] & 0x03) + 1
    if nal_length_size == 3:
        raise MediaFormatError("avcC NAL length size 3 is not allowed")
    sps, offset = _read_parameter_sets(record, 6, record[5] & 0x1F)
    if offset >= len(record):
        raise MediaFormatError("avcC has no PPS count")
    pps, _ = _read_parameter_sets(record, offset + 1, record[offset])
    if not sps or not pps:
        raise MediaFormatError("avcC without SPS or PPS")
    return AvcDecoderConfig(nal_length_size, sps, pps)


def split_avcc(data: bytes | memoryview, nal_length_size: int) -> list[memoryview]:
    """The NAL units of a length-prefixed access unit, as views (no copies)."""
    view = memoryview(data)
    nals = []
    offset, end = 0, len(view)
    while offset < end:
        if offset + nal_length_size > end:
            raise MediaFormatError("NAL length prefix cut short")
        size = int.from_bytes(view[offset : offset + nal_length_size], "big")
        offset += nal_length_size
        if size == 0 or offset + size > end:
            raise MediaFormatError("NAL unit length out of range")
        nals.append(view[offset : offset + size])
        offset += size
    return nals


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (3- or 4-byte start codes)."""
    nals = []
    for chunk in data.split(b"\x00\x00\x01"):
        nal = chunk.rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


def parameter_sets_annexb(sps: tuple[bytes, ...], pps: tuple[bytes, ...]) -> bytes:
    return b"".join(START_CODE + nal for nal in (*sps, *pps))


def to_annexb(
    nals: list[memoryview], parameter_sets: bytes, flagged_key: bool = False
) -> tuple[bytes, bool]:
    """Join NAL units with start codes; put `parameter_sets` before a keyframe lacking them.

    A keyframe is an IDR or, with `flagged_key`, any frame the container marks as key (an
    open-GOP I-frame). Returns the access unit and whether it is a keyframe. The
    parameter sets go after any access unit delimiter, where the standard orders them.
    """
    types = [nal[0] & 0x1F for nal in nals]
    keyframe = flagged_key or NAL_IDR in types
    parts: list[bytes | memoryview] = []
    insert_at = -1
    if keyframe and NAL_SPS not in types:
        insert_at = 1 if types[0] == NAL_AUD else 0
    for index, nal in enumerate(nals):
        if index == insert_at:
            parts.append(parameter_sets)
        parts.append(START_CODE)
        parts.append(nal)
    return b"".join(parts), keyframe
