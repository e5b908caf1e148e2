"""Evict our own pod through the Eviction API, so a PodDisruptionBudget is respected.

201: evicted (the Deployment replaces the pod). 429: a PodDisruptionBudget forbids it
right now; retry with exponential backoff and full jitter (Retry-After when the server
sends one) until a deadline. 404: the pod is already gone, which is what we wanted.
"""

from __future__ import annotations

import logging
import random
import time

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

log = logging.getLogger("warmfleet.gc.k8s")

NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class EvictionFailed(RuntimeError):
    pass


def in_cluster_api() -> k8s.CoreV1Api:
    from kubernetes import config

    config.load_incluster_config()
    return k8s.CoreV1Api()


def api_for(host: str) -> k8s.CoreV1Api:
    """A client for an explicit API server URL (tests, or a kubeconfig-less run)."""
    conf = k8s.Configuration(host=host)
    return k8s.CoreV1Api(k8s.ApiClient(conf))


def current_namespace(default: str = "default") -> str:
    try:
        with open(NAMESPACE_FILE) as f:
            return f.read().strip() or default
    except OSError:
        return default


def evict(
    api: k8s.CoreV1Api,
    name: str,
    namespace: str,
    deadline_s: float = 300.0,
    base_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
    rng: random.Random | None = None,
) -> str:
    """Returns "evicted" or "gone"; raises EvictionFailed past the deadline or on another error."""
    rng = rng or random.Random()
    body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace))
    deadline = time.monotonic() + deadline_s
    attempt = 0
    while True:
        attempt += 1
        try:
            api.create_namespaced_pod_eviction(name, namespace, body, _request_timeout=30)
            log.warning("pod evicted", extra={"pod": name, "namespace": namespace, "attempts": attempt})
            return "evicted"
        except ApiException as exc:
            if exc.status == 404:
                log.info("pod already gone", extra={"pod": name, "namespace": namespace})
                return "gone"
            if exc.status != 429:
                raise EvictionFailed(f"eviction of {namespace}/{name} failed: {exc.status} {exc.reason}") from exc
            delay = rng.uniform(0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1)))  # full jitter
            retry_after = (exc.headers or {}).get("Retry-After")
            if retry_after and retry_after.isdigit():
                delay = max(delay, float(retry_after))
            if time.monotonic() + delay > deadline:
                raise EvictionFailed(
                    f"eviction of {namespace}/{name} still blocked by a disruption budget after {attempt} attempts"
                ) from exc
            log.info("eviction blocked by a disruption budget; retrying",
                     extra={"pod": name, "attempt": attempt, "delay_s": round(delay, 3)})
            time.sleep(delay)  # backoff between attempts, not synchronisation
