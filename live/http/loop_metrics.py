"""The serving event loop's own figures for /metrics, read at each scrape: how many
asyncio tasks are alive. Under a steady load the count stays level; one that keeps
growing is a leak (a task per viewer, socket or request never ended)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class LoopCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        """Nothing when no loop runs here (the registry rendered outside the server)."""
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:
            return
        yield GaugeMetricFamily(
            "streamcart_asyncio_tasks", "asyncio tasks alive on the serving loop.", value=tasks
        )
