"""Where a running server is stuck, on request: SIGUSR1 writes every thread's stack to
stderr (faulthandler, so it works even when the event loop is blocked) and every
asyncio task's stack to the log. Operators send it to a server that does not stop or
answer; the tests send it before they kill a server that ignored SIGTERM."""

from __future__ import annotations

import asyncio
import faulthandler
import io
import logging
import signal
import sys

log = logging.getLogger("streamcart.stacks")

SIGNAL = signal.SIGUSR1


def install(loop: asyncio.AbstractEventLoop) -> None:
    """After the loop's handler, so faulthandler's runs first and then chains to it."""
    loop.add_signal_handler(SIGNAL, _log_tasks, loop)
    faulthandler.register(SIGNAL, file=sys.stderr, all_threads=True, chain=True)


def _log_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        stack = io.StringIO()
        task.print_stack(limit=12, file=stack)
        log.warning("task stack", extra={"task": task.get_name(), "stack": stack.getvalue()})
    log.warning("dumped the stacks of %d tasks", len(tasks))
