"""The adapters holding python-engineio's and python-socketio's internals: the installed
libraries are the versions they were written for (an upgrade fails here first), each
finds every internal it uses, and a missing one is reported naming the library and its
installed version."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from live.hub import engineio_private, socketio_private
from live.hub.internals import Internals, check_internals, report
from tests.hub_internals_support import BREAKS

ADAPTERS = {adapter.DISTRIBUTION: adapter for adapter in (engineio_private, socketio_private)}
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pinned(distribution: str) -> str:
    """The exact version pyproject.toml pins `distribution` to."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = [d for d in dependencies if re.match(rf"{re.escape(distribution)}\s*==", d)]
    assert len(pins) == 1, f"{distribution} must be pinned exactly (==) once: {dependencies}"
    return pins[0].split("==", 1)[1].strip()


@pytest.mark.parametrize("distribution", sorted(ADAPTERS))
def test_the_installed_library_is_the_version_its_adapter_was_written_for(distribution):
    adapter = ADAPTERS[distribution]
    installed = version(distribution)
    assert installed == adapter.WRITTEN_FOR, (
        f"{distribution} {installed} is installed but {adapter.__name__} was written for "
        f"{adapter.WRITTEN_FOR}: review every internal it uses, then update WRITTEN_FOR"
    )
    assert pinned(distribution) == adapter.WRITTEN_FOR


@pytest.mark.parametrize("distribution", sorted(ADAPTERS))
def test_each_adapter_finds_every_internal_it_uses(distribution):
    assert ADAPTERS[distribution].missing() == []
    assert report(ADAPTERS[distribution]) is None


def test_with_both_libraries_as_pinned_the_hub_uses_both_adapters():
    assert check_internals() == Internals(engineio=True, socketio=True)
    assert check_internals().fast_broadcast


@pytest.mark.parametrize("distribution", sorted(BREAKS))
def test_a_missing_internal_is_reported_with_the_library_and_its_version(
    distribution, monkeypatch, caplog
):
    BREAKS[distribution](monkeypatch)
    problem = report(ADAPTERS[distribution])
    assert problem is not None
    assert problem.startswith(f"{distribution} {version(distribution)} lacks ")
    assert ADAPTERS[distribution].__name__ in problem
    other = next(name for name in ADAPTERS if name != distribution)
    assert report(ADAPTERS[other]) is None  # only the broken library falls back

    usable = check_internals()
    assert not usable.fast_broadcast
    assert (usable.engineio, usable.socketio) == (
        distribution != "python-engineio",
        distribution != "python-socketio",
    )
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"{problem}; the hub takes its public path"]


def test_another_version_with_every_internal_is_used_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(socketio_private, "WRITTEN_FOR", "0.0.1")
    assert check_internals() == Internals(engineio=True, socketio=True)
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(f"python-socketio {version('python-socketio')} is installed")
    assert "written for 0.0.1" in warning
