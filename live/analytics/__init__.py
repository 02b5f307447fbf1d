"""Live-session analytics: durable viewer visits, the pin timeline and the owner's stats.

Kept free of imports so that `live.sessions.service` can record pins without a cycle.
"""
