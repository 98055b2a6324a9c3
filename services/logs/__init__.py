"""Logs: recording, reading and retention."""
