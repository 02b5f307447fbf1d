"""Would one sendmmsg for all viewers of a frame pay, now that they share one socket?

    .venv/bin/python bench/sendmmsg.py [--viewers 50 100 200] [--segments 1 6] [--rounds 300]

Builds bench/sendmmsg_probe.c with the system's C compiler into a temporary directory
and runs it: one UDP socket sends a frame (1 or 6 datagrams of 1,200 bytes, one
segmented send per viewer, as the C fan-out does) to N receivers on 127.0.0.1, either
as one sendmsg per viewer or as one sendmmsg for all of them, the two alternating round
by round. Prints nanoseconds per viewer for each and their ratio; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import harness
from checkout import git_commit
from socketio_fanout import render_columns

PROBE = Path(__file__).resolve().parent / "sendmmsg_probe.c"
DEFAULT_JSON = harness.RESULTS / "sendmmsg.json"
RUN_SECONDS = 120


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--segments", type=int, nargs="+", default=[1, 6])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    if not all(1 <= v <= 1024 for v in args.viewers) or not all(
        1 <= s <= 32 for s in args.segments
    ):
        parser.error("viewers 1-1024, segments 1-32")
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        parser.error("needs a C compiler (cc)")
    runs = []
    with tempfile.TemporaryDirectory() as work:
        probe = Path(work) / "probe"
        subprocess.run([compiler, "-O2", "-o", str(probe), str(PROBE)], check=True)
        for viewers in args.viewers:
            for segments in args.segments:
                done = subprocess.run(
                    [str(probe), str(viewers), str(segments), str(args.rounds)],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=RUN_SECONDS,
                )
                runs.append(json.loads(done.stdout))
    rows = [
        (
            str(r["viewers"]),
            str(r["segments"]),
            f"{r['sendmsg_ns_per_viewer']:,.0f}",
            f"{r['sendmmsg_ns_per_viewer']:,.0f}",
            f"{r['sendmmsg_ns_per_viewer'] / r['sendmsg_ns_per_viewer']:.2f}",
            str(r["failures"]),
        )
        for r in runs
    ]
    print(
        render_columns(
            "One segmented send per viewer: sendmsg each, or one sendmmsg for all",
            ("viewers", "datagrams", "sendmsg ns/viewer", "sendmmsg ns/viewer", "ratio", "fails"),
            rows,
        )
    )
    harness.write_json(
        args.json,
        {
            "bench": "sendmmsg",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "runs": runs,
        },
    )
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
