"""The egress gateway of each pool whose policy allows anything (warmfleet/cli/k8s/generate.py): its
Deployment, Service and NetworkPolicy, and the executor env that points jobs' relays at it."""

from __future__ import annotations

from warmfleet.cli.k8s.manifest_parts import container_env, dns_rule, labels, unprivileged_security_context

from egress.policy import NON_PUBLIC_NETWORKS, Entry, parse_policy

GATEWAY_PORT, GATEWAY_CONTROL_PORT, GATEWAY_METRICS_PORT = 3128, 3129, 9465
EGRESS_SOCKET = "/tmp/warmfleet-egress/egress.sock"  # in the executor container; jobs' relays connect
GATEWAY_CONFIG_DIR = "/etc/warmfleet-egress"


def egress_entries(p: dict) -> list[Entry]:
    return parse_policy(p.get("egress") or "none")


def gateway_name(pool: str) -> str:
    return f"warmfleet-egress-{pool}"


def executor_egress_values(p: dict) -> dict:
    """A pool with egress: the supervisor serves the jobs' relay socket and forwards to
    the gateway; the egress secret goes in the pool's executor.env Secret."""
    if not egress_entries(p):
        return {}
    gw = gateway_name(p["name"])
    return {
        "egress_socket": EGRESS_SOCKET,
        "egress_gateway": f"{gw}:{GATEWAY_PORT}",
        "egress_control": f"tcp:{gw}:{GATEWAY_CONTROL_PORT}",
    }


def gateway_deployment(definition: dict, p: dict) -> dict:
    pool = p["name"]
    allow = ",".join(e.text for e in egress_entries(p))
    container = {
        "name": "egress",
        "image": definition["image"],
        "command": ["python", "-m", "egress"],
        "env": container_env(
            config_file=f"{GATEWAY_CONFIG_DIR}/egress.env",  # the shared secret
            egress_pool=pool, egress_allow=allow, egress_listen=f"tcp:0.0.0.0:{GATEWAY_PORT}",
            egress_control=f"tcp:0.0.0.0:{GATEWAY_CONTROL_PORT}", egress_metrics_port=GATEWAY_METRICS_PORT,
            egress_metrics_addr="0.0.0.0",
        ),
        "ports": [
            {"name": "proxy", "containerPort": GATEWAY_PORT},
            {"name": "control", "containerPort": GATEWAY_CONTROL_PORT},
            {"name": "metrics", "containerPort": GATEWAY_METRICS_PORT},
        ],
        "livenessProbe": {"tcpSocket": {"port": "proxy"}, "periodSeconds": 20},
        "readinessProbe": {"tcpSocket": {"port": "proxy"}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
        "securityContext": unprivileged_security_context(),
        "volumeMounts": [{"name": "config", "mountPath": GATEWAY_CONFIG_DIR, "readOnly": True}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": gateway_name(pool), "labels": labels(pool, "egress-gateway")},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels(pool, "egress-gateway")},
            "template": {
                "metadata": {"labels": labels(pool, "egress-gateway")},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "config", "secret": {"secretName": gateway_name(pool), "defaultMode": 0o400}}],
                },
            },
        },
    }


def gateway_service(p: dict) -> dict:
    pool = p["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": gateway_name(pool), "labels": labels(pool, "egress-gateway")},
        "spec": {
            "selector": labels(pool, "egress-gateway"),
            "ports": [
                {"name": "proxy", "port": GATEWAY_PORT, "targetPort": "proxy"},
                {"name": "control", "port": GATEWAY_CONTROL_PORT, "targetPort": "control"},
            ],
        },
    }


def gateway_policy(p: dict) -> dict:
    """Only the pool's executor pods reach the gateway (any namespace: its metrics); the
    gateway reaches DNS and public addresses on the allow-list's ports, plus any
    non-public network an entry names explicitly. The gateway itself decides per name."""
    pool, entries = p["name"], egress_entries(p)
    ports = sorted({e.port for e in entries if e.port is not None})
    any_port = any(e.port is None and not e.names_non_public() for e in entries)
    public = []
    for version, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        excluded = [str(n) for n in NON_PUBLIC_NETWORKS if n.version == version and n.prefixlen > 0]
        public.append({"ipBlock": {"cidr": everything, "except": excluded}})
    public_rule: dict = {"to": public}
    if not any_port:
        public_rule["ports"] = [{"protocol": "TCP", "port": port} for port in ports]
    rules = [dns_rule(), public_rule]
    for e in entries:
        if e.names_non_public():
            rule: dict = {"to": [{"ipBlock": {"cidr": str(e.network)}}]}
            if e.port is not None:
                rule["ports"] = [{"protocol": "TCP", "port": e.port}]
            rules.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": gateway_name(pool), "labels": labels(pool, "egress-gateway")},
        "spec": {
            "podSelector": {"matchLabels": labels(pool, "egress-gateway")},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": labels(pool)}}],
                 "ports": [{"protocol": "TCP", "port": GATEWAY_PORT}, {"protocol": "TCP", "port": GATEWAY_CONTROL_PORT}]},
                {"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": GATEWAY_METRICS_PORT}]},
            ],
            "egress": rules,
        },
    }
