"""Live-session analytics: durable viewer visits and the owner's stats and timeline.

It stands above sessions, flash, streaming and the hub, reading what they record, and
none of them imports it: the hub notes visits on the `VisitRecorder` that the
composition root hands it (docs/architecture.md, "Inside `live`").
"""
