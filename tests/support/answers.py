"""Count what "answered once" is about, from outside the client and the executor:

- `PublishedResults`: a raw subscriber on every reply channel of a pool, counting results
  published per job id (what a client would see a second time if a run published twice);
- `runs_by_job`: runs per job id as the pods record them in their logs (a run that ended,
  "job done", or was cut short by its runner's death, "runner died mid-job"; a run inside
  a sandbox killed whole leaves no line, so this is a lower bound).

The guarantee they check (README, "What a failover costs"): every job is answered exactly
once, a job may run more than once. What bounds the re-runs: a job runs again only when
what ran it died (a runner killed mid-job re-runs its one job; a sandbox killed whole
re-runs the jobs of its slots), and never more than WARMFLEET_MAX_DELIVERIES times
(then the fleet answers it `failed`).
"""

from __future__ import annotations

import collections
import glob
import json
import os
import threading
import time
import uuid

import redis

from warmfleet.contract import keys
from warmfleet.plumbing import redis_connect
from warmfleet.contract.schema import Result


class PublishedResults:
    """Every result published on the pool's reply channels, counted per job id, by a
    subscriber of our own (reconnecting after a lost connection: publishes made while it
    was away are missed, so a count is a lower bound and a count of 2 is a real second
    publish)."""

    def __init__(self, url: str, pool: str = "default") -> None:
        self.url, self.pattern = url, keys.reply_channel(pool, "*")
        self.barrier_channel = keys.reply_channel(pool, "answers-barrier")
        self.counts: collections.Counter[str] = collections.Counter()
        self._barriers: dict[str, threading.Event] = {}
        self.reconnects = 0
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> "PublishedResults":
        self._thread.start()
        if not self._subscribed.wait(30):
            raise AssertionError("the raw subscriber never got its subscription confirmed")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def settle(self, timeout: float = 10.0) -> None:
        """Return once every publish made before this call has been counted: Redis delivers
        to a subscriber in publish order, so a marker published now arrives after them (a
        second PUBLISH of a result lands right after the first: look only after this)."""
        token = uuid.uuid4().hex
        seen = self._barriers[token] = threading.Event()
        conn = redis_connect.connect(self.url)
        try:
            deadline = time.monotonic() + timeout
            while not seen.is_set():
                conn.publish(self.barrier_channel, token)  # again if our subscriber was away for the first
                if seen.wait(0.5):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError("our subscriber never saw its own marker")
        finally:
            conn.close()
            self._barriers.pop(token, None)

    def twice(self) -> dict[str, int]:
        return {job_id: n for job_id, n in self.counts.items() if n > 1}

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                conn = redis_connect.connect(self.url, decode_responses=True)
                pubsub = conn.pubsub()
                pubsub.psubscribe(self.pattern)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.2)
                    if msg is None:
                        continue
                    if msg["type"] == "psubscribe":
                        self._subscribed.set()
                    elif msg["type"] == "pmessage" and msg["channel"] == self.barrier_channel:
                        if (seen := self._barriers.get(msg["data"])) is not None:
                            seen.set()
                    elif msg["type"] == "pmessage":
                        self.counts[Result.from_json(msg["data"]).job_id] += 1
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                self.reconnects += 1
                self._stop.wait(0.2)  # Redis is restarting or failing over: try again shortly


def runs_by_job(log_dir: str) -> collections.Counter[str]:
    """Runs per job id, from every pod log in a fleet's log folder (pods replaced during
    the test included: read it before fleet.stop(), which removes the folder)."""
    runs: collections.Counter[str] = collections.Counter()
    for path in glob.glob(os.path.join(log_dir, "*.log")):
        with open(path, errors="replace") as f:
            for line in f:
                if '"job done"' not in line and '"runner died mid-job"' not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line cut by a killed sandbox
                if event.get("event") in ("job done", "runner died mid-job") and event.get("job_id"):
                    runs[event["job_id"]] += 1
    return runs


def fleet_logs(fleet) -> str:
    return os.path.join(fleet.runtime_dir, "logs")


def reruns(runs: collections.Counter[str]) -> int:
    """Runs beyond each job's first."""
    return sum(n - 1 for n in runs.values() if n > 1)
