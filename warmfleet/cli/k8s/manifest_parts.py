"""What the executor, KEDA and egress gateway objects of warmfleet/cli/k8s/generate.py share: the labels
that select a pool's pods, the non-root uid and its security context, the rule that lets a pod reach DNS,
and containers' environments written from the settings tree."""

from __future__ import annotations

from warmfleet.settings import Settings, to_env

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


def container_env(**values) -> list[dict]:
    """A container's `env` from settings values (field names of warmfleet/settings/), written
    by the tree's serializer: no variable name is spelled here, and a bad value fails now."""
    return [{"name": name, "value": value} for name, value in to_env(Settings.from_values(**values)).items()]
