"""Benchmarks: each script runs on its own (``python benchmarks/NAME.py``).

See docs/performance.md for what they measure and the figures.
"""
