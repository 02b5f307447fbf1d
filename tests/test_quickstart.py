"""docs/quickstart.md, run as written: its `sh` blocks in order against a real server.

The first block starts the server: the test starts it itself (a free port, a data dir
of its own) with the settings that block exports, and checks that the block is just
those and `make run`. Every other block runs, in order, in one strict bash (`set -Eeuo
pipefail`, and `curl` made to fail on an error status), so a wrong path, field or body
in the page fails this test. Only `BASE` is changed, to the test server's URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.server_process import ServerProcess, clean_env

QUICKSTART = Path(__file__).resolve().parent.parent / "docs" / "quickstart.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DOC_BASE = "BASE=http://127.0.0.1:8080"
RUN_WITHIN = 45  # seconds: a bound for a page that takes a few, not a measurement
# Strict mode for the page's shell: a failing command stops it, naming the command, and
# so does an HTTP error status from any curl that does not say itself how to fail (as the
# readiness loop does), showing the problem document.
PREAMBLE = """set -Eeuo pipefail
trap 'echo "the page failed at: $BASH_COMMAND" >&2' ERR
curl() {
  case " $* " in
    *" -f "* | *" -sf "* | *" --fail "*) command curl "$@" ;;
    *)
      local out
      out=$(command curl --fail-with-body "$@") || { echo "curl $*: $out" >&2; return 22; }
      printf '%s\\n' "$out"
      ;;
  esac
}
"""
# What the test reads back from the page's shell once every block has run.
TRAILER = 'jq -n --arg order "$ORDER" --arg buyer "$BUYER" \'{$order, $buyer}\' >result.json\n'


def quickstart_blocks() -> tuple[dict[str, str], str]:
    """The settings the server block exports, and the other blocks as one script."""
    server, *rest = SH_BLOCK.findall(QUICKSTART.read_text())
    lines = server.strip().splitlines()
    assert lines[-1] == "make run", server
    settings = {}
    for line in lines[:-1]:
        export, *assignments = shlex.split(line)
        assert export == "export", line
        settings.update(a.split("=", 1) for a in assignments)
    script = "\n".join(rest)
    assert script.count(DOC_BASE) == 1, f"the page should set {DOC_BASE} once"
    return settings, script


def run_page(script: str, cwd: Path, env: dict[str, str]) -> None:
    """The blocks in one bash, in a process group of its own so that whatever the page
    started in the background (ffmpeg) is killed with it, even when a block failed; its
    output goes to files, which the failure shows the end of."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            ["bash", "-c", PREAMBLE + script + TRAILER],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        code = process.wait(timeout=RUN_WITHIN)
    except subprocess.TimeoutExpired:
        code = f"none: still running after {RUN_WITHIN} s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert code == 0, "\n".join(
        [
            f"the page's shell exited with {code}",
            out.read_text()[-3000:],
            "--- stderr ---",
            err.read_text()[-3000:],
        ]
    )


@pytest.fixture
def page_dir(tmp_path: Path) -> Path:
    """Where the page runs: a directory like a clone's, whose `.venv` is this one."""
    workdir = tmp_path / "clone"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(sys.prefix)
    assert (workdir / ".venv" / "bin" / "streamcart").exists(), "run from the project's venv"
    return workdir


async def test_quickstart_runs_as_written_to_a_paid_order(tmp_path, page_dir):
    settings, script = quickstart_blocks()
    assert {"STREAMCART_SEPAY_ACCOUNT", "STREAMCART_SEPAY_BANK"} <= settings.keys()
    env = clean_env(
        tmp_path,
        STREAMCART_RTMP_HOST="127.0.0.1",
        STREAMCART_PASSWORD_TIME_COST="1",  # the demo's three accounts, hashed quickly
        STREAMCART_PASSWORD_MEMORY_KIB="1024",
        **settings,
    )
    server = ServerProcess(env, tmp_path / "server.log")
    try:
        async with aiohttp.ClientSession() as http:
            await server.wait_ready(http)
            base = str(server.make_url("/")).rstrip("/")
            script = script.replace(DOC_BASE, f"BASE={base}")
            # the page's own shell shares the server's settings, as its two terminals do
            run_page(script, page_dir, {**env, "STREAMCART_HTTP_PORT": str(server.port)})
            result = json.loads((page_dir / "result.json").read_text())
            async with http.get(
                f"{base}/api/orders/{result['order']}",
                headers={"Authorization": f"Bearer {result['buyer']}"},
            ) as response:
                assert response.status == 200, await response.text()
                order = await response.json()
    finally:
        code = await server.stop()
    assert code == 0, server.explain(f"exit code {code}")
    assert order["status"] == "paid"
    payment = order["payment"]
    assert payment["status"] == "paid" and payment["received"] == order["total"]
    assert payment["bank"] == settings["STREAMCART_SEPAY_BANK"]
    assert payment["account"] == settings["STREAMCART_SEPAY_ACCOUNT"]
    assert payment["code"] in payment["qr_payload"] and payment.get("qr_missing_reason") is None
    assert payment["qr_url"].startswith(f"/api/payments/{payment['id']}/qr.svg")
    assert order["items"][0]["unit_price"] == 199_000  # the page's live price, not the regular one
    answer = (page_dir / "answer.sdp").read_text()
    assert answer.startswith("v=0")
    assert re.search(r"^a=rtpmap:\d+ H264/90000", answer, re.MULTILINE), answer
    assert re.search(r"^a=rtpmap:\d+ opus/48000/2", answer, re.MULTILINE), answer
