"""Adapters: one folder per port, one backend per module."""
