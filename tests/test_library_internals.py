"""The private internals of aiortc, aioice and pylibsrtp: pinned to the versions the
adapters were written for, checked once at start-up, and when one is missing, said so
(library, installed version, what is missing) and worked around through the library's
public path, still serving viewers."""

from __future__ import annotations

import logging
import tomllib
from importlib.metadata import version
from pathlib import Path

import aioice
import pylibsrtp
import pytest
from aiortc import RTCRtpSender

from signaling.adapters import pylibsrtp_private
from signaling.adapters.checks import ADAPTERS, Internals, check_internals
from signaling.ice_setup import open_ice_port
from tests import test_whep
from tests.media_support import publish
from tests.test_whep import FPS, SPEED
from tests.webrtc_support import DecodingViewer, settled

loopback_only = test_whep.loopback_only  # the WHEP tests' fixtures, used here too
make_server = test_whep.make_server

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.LIBRARY)
def test_the_installed_library_is_the_version_its_adapter_was_written_for(adapter):
    installed = version(adapter.LIBRARY)
    assert installed == adapter.WRITTEN_FOR, (
        f"{adapter.LIBRARY} {installed} is installed, but {adapter.__name__} was written "
        f"for {adapter.WRITTEN_FOR}: check every internal it uses against the new version, "
        "then update WRITTEN_FOR and the pin in pyproject.toml together"
    )
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert f"{adapter.LIBRARY}=={adapter.WRITTEN_FOR}" in dependencies


async def test_every_internal_is_there_in_the_pinned_versions(caplog):
    with caplog.at_level(logging.ERROR, logger="streamcart.signaling"):
        assert await check_internals() == Internals()
    assert not caplog.records


def the_error(caplog: pytest.LogCaptureFixture) -> str:
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    return record.getMessage()


async def test_a_missing_aiortc_internal_is_named_with_the_version(monkeypatch, caplog):
    monkeypatch.delattr(RTCRtpSender, "_retransmit")
    with caplog.at_level(logging.ERROR, logger="streamcart.signaling"):
        internals = await check_internals()
    assert internals == Internals(aiortc=False)
    assert not internals.fast_path and not internals.shared_port
    message = the_error(caplog)
    assert f"aiortc {version('aiortc')}" in message
    assert "RTCRtpSender._retransmit" in message
    assert "aiortc's own sender" in message


async def test_a_missing_aioice_internal_leaves_viewers_a_port_each(monkeypatch, caplog):
    monkeypatch.delattr(aioice.Connection, "get_component_candidates")  # what gathers
    with caplog.at_level(logging.ERROR, logger="streamcart.signaling"):
        internals = await check_internals()
    assert internals == Internals(aioice=False)
    assert internals.fast_path and not internals.shared_port
    message = the_error(caplog)
    assert f"aioice {version('aioice')}" in message
    assert "Connection.get_component_candidates" in message
    assert await open_ice_port(9, 0, "127.0.0.1", False, usable=internals.shared_port) is None


async def test_a_check_that_breaks_unexpectedly_still_names_the_library(monkeypatch, caplog):
    async def broken() -> None:
        raise KeyError("moved")

    monkeypatch.setattr(pylibsrtp_private, "check", broken)
    with caplog.at_level(logging.ERROR, logger="streamcart.signaling"):
        assert await check_internals() == Internals(pylibsrtp=False)
    message = the_error(caplog)
    assert f"pylibsrtp {version('pylibsrtp')}" in message and "KeyError('moved')" in message


async def test_without_pylibsrtps_binding_viewers_get_media_through_aiortcs_own_path(
    make_server, stream_tags, monkeypatch, caplog
):
    """The fast path's use of `pylibsrtp._binding` is gone for the whole test: the check
    says so, and a viewer is still sent the stream, by aiortc's public sender alone."""
    monkeypatch.delattr(pylibsrtp, "_binding")
    with caplog.at_level(logging.ERROR, logger="streamcart.signaling"):
        internals = await check_internals()
    assert internals == Internals(pylibsrtp=False)
    message = the_error(caplog)
    assert f"pylibsrtp {version('pylibsrtp')}" in message and "_binding" in message
    server = await make_server(fast_path=internals.fast_path)
    hub = server.open_stream()
    viewer = DecodingViewer()
    try:
        await server.watch(viewer)
        (peer,) = server.service._viewers.values()
        assert not peer.senders and [t.kind for t in peer.tracks] == ["video", "audio"]
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: (viewer.video_frames, viewer.audio_frames))
        assert viewer.video_frames >= 0.9 * 3 * FPS
        assert viewer.video_sizes == {(320, 240)}
        assert viewer.audio_frames > 0
        assert not server.service._fanouts  # no fast-path fan-out was started
    finally:
        await viewer.close()
    assert await server.all_subscriptions_closed()


def test_the_adapters_are_the_only_modules_that_name_a_private_internal():
    """No other module of ours reaches into these libraries past their public package."""
    root = PYPROJECT.parent
    adapters = {Path(module.__file__).resolve() for module in ADAPTERS}
    offenders = []
    for path in sorted((root / "signaling").rglob("*.py")):
        if path.resolve() in adapters:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            imported = line.startswith(("from aiortc.", "from aioice.", "from pylibsrtp."))
            if imported or line.startswith(("import aioice.", "import aiortc.")):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
            if "pylibsrtp._" in line or "._RTC" in line:
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []
