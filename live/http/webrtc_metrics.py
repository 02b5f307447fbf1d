"""WebRTC figures for /metrics, read from the app's objects at each scrape: viewers,
what the shared port dropped and why, and the relay pulls between replicas."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from live.streaming.relay import RelayEdge, RelayOrigin
from signaling.whep import WhepService


class WebrtcCollector(Collector):
    def __init__(self, whep: WhepService, origin: RelayOrigin, edge: RelayEdge) -> None:
        self._whep = whep
        self._origin = origin
        self._edge = edge

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "streamcart_webrtc_viewers", "WebRTC viewers of this replica.", value=len(self._whep)
        )
        dropped = CounterMetricFamily(
            "streamcart_webrtc_dropped",
            "Datagrams and ICE-TCP connections the WebRTC port dropped, by reason.",
            labels=["reason"],
        )
        port = self._whep.ice_port
        for reason, count in sorted((port.dropped if port else {}).items()):
            dropped.add_metric([reason], count)
        yield dropped
        yield GaugeMetricFamily(
            "streamcart_relay_pulls",
            "Streams this replica pulls from the replica that ingests them.",
            value=self._edge.pulls,
        )
        yield GaugeMetricFamily(
            "streamcart_relay_edges",
            "Pulls of this replica's streams by other replicas.",
            value=self._origin.pulls,
        )
