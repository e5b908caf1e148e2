"""What the executor, KEDA and egress gateway objects of k8s/generate.py share: the labels
that select a pool's pods, the non-root uid, and the rule that lets a pod reach DNS."""

from __future__ import annotations

APP = "warmfleet"
SIDECAR_UID = 65532


def labels(pool: str, component: str = "executor") -> dict:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component, "warmfleet.dev/pool": pool}


def dns_rule() -> dict:
    return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
