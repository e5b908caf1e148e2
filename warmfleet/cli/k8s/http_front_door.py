"""The HTTP front door in Kubernetes (k8s/generate.py): `warmfleet serve` as a Deployment
of interchangeable replicas (tenants, keys, sandboxes and quotas live in Redis), a
Service in front, a HorizontalPodAutoscaler on CPU, a NetworkPolicy (in: its port from
anywhere the cluster lets reach it, metrics; out: Redis and DNS only), and its Redis ACL
user: the client's commands on the served pools' keys and the service's own keys."""

from __future__ import annotations


from warmfleet.cli.k8s.manifest_parts import container_env, dns_rule, unprivileged_security_context

from warmfleet.contract import keys
from warmfleet.settings import env_name

NAME = "warmfleet-http"
HTTP_PORT, HTTP_METRICS_PORT = 8080, 9466
SECRET = "warmfleet-http-redis"  # key redis-url: redis://warmfleet-http:PASSWORD@...

# What the service does in Redis: what warmfleet.AsyncClient does (submit, stream, wait,
# sessions) and what warmfleet/http/ keeps (tenants, sandboxes, quotas). Checked by a test
# that runs the service as this user (tests/k8s).
HTTP_COMMANDS = [
    "xadd", "xread", "xdel", "get", "set", "mget", "exists", "del", "expire", "pexpire", "pttl", "publish",
    "subscribe", "unsubscribe", "evalsha", "eval", "script|load", "script|exists", "ping", "client|setname",
    "hget", "hset", "hdel", "hlen", "hexists", "hgetall", "hincrby", "hkeys",
    "zadd", "zrem", "zrange", "zrangebyscore", "zremrangebyscore", "zcard", "incr", "multi", "exec",
]


def labels() -> dict:
    return {"app.kubernetes.io/name": "warmfleet", "app.kubernetes.io/component": "http"}


def acl_line(definition: dict) -> str:
    pools = [p["name"] for p in definition["pools"]]
    patterns = " ".join(f"~{keys.pool_prefix(p)}*" for p in pools) + f" ~{keys.HTTP_PREFIX}*"
    channels = " ".join(f"&{keys.reply_channel(p, '')}*" for p in pools)
    return (f"user {NAME} on resetpass resetkeys resetchannels {patterns} {channels} -@all "
            + " ".join(f"+{c}" for c in HTTP_COMMANDS))


def http_deployment(definition: dict) -> dict:
    http = definition.get("http") or {}
    pools = list(http.get("pools") or [p["name"] for p in definition["pools"]])
    container = {
        "name": "http",
        "image": definition["image"],
        "command": ["python", "-m", "warmfleet.http"],
        "env": [
            {"name": env_name("redis_url"), "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "redis-url"}}},
            *container_env(http_pools=pools, http_listen=f"0.0.0.0:{HTTP_PORT}", http_metrics_port=HTTP_METRICS_PORT),
        ],
        "ports": [{"name": "http", "containerPort": HTTP_PORT}, {"name": "metrics", "containerPort": HTTP_METRICS_PORT}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": http.get("cpu", "500m"), "memory": http.get("memory", "256Mi")},
                      "limits": {"cpu": http.get("cpu", "500m"), "memory": http.get("memory", "256Mi")}},
        "securityContext": unprivileged_security_context(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "labels": labels()},
        "spec": {
            "replicas": int(http.get("minReplicas", 2)),
            "selector": {"matchLabels": labels()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # SIGTERM: uvicorn stops accepting and lets streams finish (serve --graceful-s)
                    "terminationGracePeriodSeconds": 45,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                },
            },
        },
    }


def http_service() -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "labels": labels()},
            "spec": {"selector": labels(), "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def http_hpa(definition: dict) -> dict:
    http = definition.get("http") or {}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": NAME, "labels": labels()},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": int(http.get("minReplicas", 2)),
            "maxReplicas": int(http.get("maxReplicas", 10)),
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": int(http.get("cpuTarget", 70))}}}],
        },
    }


def http_policy(definition: dict) -> dict:
    redis = definition["redis"]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{NAME}-traffic"},
        "spec": {
            "podSelector": {"matchLabels": labels()},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": HTTP_PORT}, {"protocol": "TCP", "port": HTTP_METRICS_PORT}]}],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": redis["namespace"]}},
                         "podSelector": {"matchLabels": redis["podLabels"]}}],
                 "ports": [{"protocol": "TCP", "port": int(redis["port"])}]},
                dns_rule(),
            ],
        },
    }


def http_documents(definition: dict) -> list[dict]:
    return [http_deployment(definition), http_service(), http_hpa(definition), http_policy(definition)]
