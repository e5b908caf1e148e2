"""The KEDA ScaledObject of each pool (warmfleet/cli/k8s/generate.py): how a pool's executor Deployment
scales on its Redis stream's backlog, its jobs in flight and its unserved session opens."""

from __future__ import annotations

from warmfleet.cli.k8s.manifest_parts import labels

from warmfleet.contract import keys


def keda_redis_source(redis: dict, pool: str) -> tuple[str, dict]:
    """KEDA's trigger type and metadata for the Redis topology of pools.yaml (`redis.mode`:
    single, sentinel or cluster). All three read XINFO GROUPS lag on the node holding the
    pool's stream (one slot per pool on a cluster: keys.py)."""
    mode = redis.get("mode", "single")
    stream = {"stream": keys.stream(pool), "consumerGroup": keys.CONSUMER_GROUP}
    if mode == "single":
        return "redis-streams", {"address": redis["address"], **stream, "databaseIndex": "0"}
    if mode == "cluster":
        return "redis-cluster-streams", {"addresses": ",".join(redis["addresses"]), **stream}
    if mode == "sentinel":
        return "redis-sentinel-streams", {"addresses": ",".join(redis["addresses"]),
                                          "sentinelMaster": redis["sentinelMaster"], **stream, "databaseIndex": "0"}
    raise ValueError(f"redis.mode must be single, sentinel or cluster, not {mode!r}")


def scaled_object(definition: dict, p: dict) -> dict:
    pool = p["name"]
    trigger_type, common = keda_redis_source(definition["redis"], pool)
    auth = {"name": "warmfleet-redis-keda"}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"warmfleet-executor-{pool}", "labels": labels(pool)},
        "spec": {
            "scaleTargetRef": {"name": f"warmfleet-executor-{pool}"},
            "minReplicaCount": 0,
            "maxReplicaCount": int(p["maxReplicas"]),
            "pollingInterval": 5,
            "cooldownPeriod": 300,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
                "stabilizationWindowSeconds": 300,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
            }}}},
            "triggers": [
                {   # lag: the backlog nobody has read yet; the only mode that wakes from zero
                    "type": trigger_type, "name": "lag", "authenticationRef": auth,
                    "metadata": {**common, "lagCount": str(p["lagPerReplica"]), "activationLagCount": "0"},
                },
                {   # pending: jobs in flight keep their pods (one replica per `slots` pending)
                    "type": trigger_type, "name": "in-flight", "authenticationRef": auth,
                    "metadata": {**common, "pendingEntriesCount": str(p["slots"])},
                },
                {   # session opens no pod had room for (executor/sessions/host.py): a pod more each
                    "type": trigger_type, "name": "session-opens", "authenticationRef": auth,
                    "metadata": {**common, "stream": keys.session_opens(pool), "lagCount": "1",
                                 "activationLagCount": "0"},
                },
            ],
        },
    }
