"""The VietQR drawn as SVG on this server, and the version that names one drawing."""

from __future__ import annotations

import hashlib

import qrcode
from qrcode.image.svg import SvgPathFillImage

SVG = "image/svg+xml"


def qr_svg(text: str) -> bytes:
    """One black path on its own white ground with a 4-module quiet zone, so it scans on
    any page background; it scales to any size (it has a viewBox). Medium error
    correction. Pure Python and a few milliseconds: callers run it off the event loop."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=4,
        image_factory=SvgPathFillImage,
    )
    code.add_data(text)
    return code.make_image().to_string()


def qr_version(text: str) -> str:
    """Names the drawing of `text`: a URL carrying it may be cached for good, since a
    changed payload (the operator changed the account) gets another version."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
