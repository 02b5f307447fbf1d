"""Giveaways: a prize drawn among a live session's viewers, provably at random
(docs/giveaways.md)."""
