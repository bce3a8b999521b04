"""Benchmarks (issue 9): ``make bench`` or ``python -m bench [scenario ...] [--scale X]``."""
