"""What the executor, KEDA and egress gateway objects of warmfleet/cli/k8s/generate.py share: the labels
that select a pool's pods, the non-root uid and its security context, and the rule that lets a pod reach DNS."""

from __future__ import annotations

APP = "warmfleet"
SIDECAR_UID = 65532


def labels(pool: str, component: str = "executor") -> dict:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component, "warmfleet.dev/pool": pool}


def dns_rule() -> dict:
    return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def unprivileged_security_context() -> dict:
    """The GC sidecar's and the egress gateway's container: non-root, no capabilities, read-only root."""
    return {
        "runAsNonRoot": True,
        "runAsUser": SIDECAR_UID,
        "runAsGroup": SIDECAR_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
