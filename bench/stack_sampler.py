"""A CPU-time stack sampler for one server process (py-spy is not installed here).

    .venv/bin/python bench/stack_sampler.py REPORT.txt   # `streamcart serve`, sampled

SIGPROF fires after each slice of CPU time the process uses (0.5 ms asked; the kernel
rounds up to its tick, often 4 ms); the handler runs in the main thread and counts one
inclusive sample for each function on the interrupted stack and one self sample for
the innermost. Unlike cProfile it is not misled by coroutines or by the greenlets
SQLAlchemy's asyncio layer switches (cProfile's cumulative times there exceed the run
time) and costs little. Frames inside a greenlet do not chain up to the
coroutine awaiting them, so inclusive shares of request handlers are lower bounds.
SIGUSR1 restarts the counts (the benchmark sends it when its measured phase begins);
the report is written when the server exits.
"""

from __future__ import annotations

import atexit
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path

INTERVAL = 0.0005  # asked for; the kernel rounds it up to its tick (often 4 ms)
INCLUSIVE_LINES = 60
SELF_LINES = 30
ROOT = Path(__file__).resolve().parent.parent
_LIBRARY = re.compile(r"^.*/(site-packages|lib/python3\.\d+)/")


def _name(code) -> str:
    """`package/module.py:line(function)` without the long directory prefixes."""
    path = _LIBRARY.sub("", code.co_filename).removeprefix(f"{ROOT}/")
    return f"{path}:{code.co_firstlineno}({code.co_name})"


class StackSampler:
    """Counts, per function, the samples it was on the stack (inclusive) and on top (self)."""

    def __init__(self) -> None:
        self.samples = 0
        self.inclusive: Counter[str] = Counter()
        self.own: Counter[str] = Counter()
        self.cpu_started = time.process_time()

    def start(self, interval: float = INTERVAL) -> None:
        """Sample from now on, every `interval` seconds of CPU time (rounded up)."""
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, interval, interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def reset(self, *_) -> None:
        """Forget start-up: the benchmark sends SIGUSR1 when its measured phase begins."""
        self.samples = 0
        self.inclusive.clear()
        self.own.clear()
        self.cpu_started = time.process_time()

    def _sample(self, _signum, frame) -> None:
        """The SIGPROF handler: `frame` is where the main thread was interrupted."""
        self.samples += 1
        if frame is not None:
            self.own[_name(frame.f_code)] += 1
        seen = set()
        while frame is not None:
            name = _name(frame.f_code)
            if name not in seen:
                seen.add(name)
                self.inclusive[name] += 1
            frame = frame.f_back

    def report(self) -> str:
        """Shares of all samples, most frequent first."""
        total = max(self.samples, 1)
        cpu = time.process_time() - self.cpu_started
        lines = [
            f"{self.samples} samples over {cpu:.1f} s of CPU "
            f"(one per {1000 * cpu / total:.1f} ms); shares of all samples",
            "",
            "inclusive (on the stack):",
        ]
        lines += [
            f"{100 * n / total:5.1f}%  {f}" for f, n in self.inclusive.most_common(INCLUSIVE_LINES)
        ]
        lines += ["", "self (innermost frame):"]
        lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in self.own.most_common(SELF_LINES)]
        return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Serve under the sampler; the report is written at exit."""
    if len(argv) != 1:
        print("usage: stack_sampler.py REPORT_PATH", file=sys.stderr)
        return 2
    report_path = Path(argv[0])
    sampler = StackSampler()

    def write_report() -> None:
        sampler.stop()
        report_path.write_text(sampler.report())

    atexit.register(write_report)
    signal.signal(signal.SIGUSR1, sampler.reset)
    sampler.start()
    from live.cli import main as streamcart

    return streamcart(["serve"])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
