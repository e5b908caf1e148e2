"""One reconnect policy for every Redis connection warmfleet opens.

redis-py retries a command on a fresh connection with jittered exponential backoff;
~8 tries over a few seconds ride out a Redis restart. Longer outages surface as
ConnectionError to the caller's own loop, which logs and keeps trying (executors) or
raises a clear error past its deadline (clients).
"""

from __future__ import annotations

import redis.exceptions
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

RETRY_ON = [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]


def sync_retry() -> Retry:
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=8)


def async_retry():
    from redis.asyncio.retry import Retry as AsyncRetry

    return AsyncRetry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=8)
