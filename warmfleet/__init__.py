"""warmfleet: shared contract (job/result schema, Redis key names) and the local runtime."""

__version__ = "0.1.0"
