"""Turning pixels into rectangles: the tile diff, the encoders with their shared cache, and
the per-viewer planner that decides what to send (pure logic, it takes ``now``)."""
