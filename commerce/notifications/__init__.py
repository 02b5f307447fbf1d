"""Notifications: events turned into messages for buyers and sellers (in-app, email, push)."""
