"""Flash sales during a live session: a limited quantity at a flash price for a short
window, claimed by buyers atomically across every server process (see `service`)."""
