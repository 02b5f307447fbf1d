"""Buyers following shops."""
