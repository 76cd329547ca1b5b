"""Kits: ready-made services built on the ports."""
