"""Plumbing every role shares: logs, one way to open Redis, one reconnect policy, tracing."""
