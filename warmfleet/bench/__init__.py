"""The benchmark: warmfleet next to the ways people run untrusted snippets today.

Run it with `.venv/bin/warmfleet bench` (or `.venv/bin/python -m benchmarks`) from a
checkout. Every alternative is set up and torn down by the benchmark itself.
"""
