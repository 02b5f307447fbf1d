"""The one thing pyproject.toml cannot declare without setuptools' experimental table:
the WebRTC fan-out's per-viewer send path in C (signaling/rtp/_sendpath.c).

Optional: where it cannot be built (no compiler, not Linux) the install goes on and the
same runs in Python (signaling/rtp/srtp_frames.py, signaling/rtp/datagrams.py), only
slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "signaling.rtp._sendpath",
            sources=["signaling/rtp/_sendpath.c"],
            optional=True,
        )
    ]
)
