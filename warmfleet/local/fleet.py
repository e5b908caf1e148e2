"""`warmfleet up`: a fleet of pods on this machine, each a runsc sandbox holding one
executor supervisor, fed by an embedded Redis (or the operator's, via --redis-url).

Owns everything it creates in one private runtime directory, and removes it all on
stop: sandboxes (drained, then deleted), Redis, sockets, temp files, the pods' root
(rootfs.py). If this process dies without stopping (kill -9), its watchdog removes the
same (watchdog.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from typing import TYPE_CHECKING

import redis

from egress.policy import Policy
from warmfleet.contract import keys
from warmfleet.plumbing import redis_connect
from warmfleet.cli import status as fleet_status
from warmfleet.contract import discovery
from warmfleet.local import rootfs, runsc, watchdog
from warmfleet.local.jobenv import check_preload, ensure_env
from warmfleet.local.egress_proxy import EGRESS_DIR_IN_SANDBOX, LocalEgressProxy
from warmfleet.local.pod import SLOT_UID_BASE, Pod
from warmfleet.local.redis_server import EmbeddedRedis
from warmfleet.local.sandbox import SESSION_ROOT_IN_SANDBOX, SOCKET_DIR_IN_SANDBOX, WORKSPACE_ROOT_IN_SANDBOX
from warmfleet.local.uds_proxy import UnixSocketProxy
from warmfleet.settings import POD_FIELDS, FleetSettings, set_values

if TYPE_CHECKING:
    from warmfleet.local.recycler import LocalRecycler
    from warmfleet.settings import RecyclePolicy

log = logging.getLogger("warmfleet.fleet")


def _say(msg: str) -> None:
    print(f"warmfleet: {msg}", file=sys.stderr, flush=True)


class LocalFleet:
    def __init__(self, settings: FleetSettings, recycle_policy: "RecyclePolicy | None" = None) -> None:
        self.settings = settings
        # The executor settings given to us (environment, file, flags), taken once: a pod
        # started later to replace or recycle one gets exactly what the first pods got (mixed
        # reclaim idle times would let a pod with the shorter one take live jobs from a pod
        # with the longer). Pod.settings adds what the fleet decides per pod.
        self.executor_values = set_values(settings, POD_FIELDS)
        self.recycle_policy = recycle_policy  # None: pods are never recycled, only replaced if they die
        self.recycler: "LocalRecycler | None" = None
        Policy.parse(settings.egress_allow)  # a bad entry: a clear error before anything is created
        # runsc's version and platforms are checked before anything is created (runsc.py).
        self.runsc_info: runsc.RunscInfo | None = runsc.inspect() if settings.sandbox else None
        self.warnings = runsc.check(self.runsc_info, settings.platform) if self.runsc_info else []
        self.runsc = self.runsc_info.path if self.runsc_info else ""
        # What each pod publishes about its sandbox (warmfleet status).
        self.sandbox_runtime = "runsc" if self.runsc_info else "none"
        self.sandbox_version = self.runsc_info.version if self.runsc_info else ""
        self.sandbox_platform = settings.platform if self.runsc_info else ""
        if settings.sandbox:
            rootfs.check_jobs_can_read_stdlib()
        # Built (or found in the cache) before anything is created: a bad requirements file
        # or preload list refuses here with pip's or Python's own error (EnvBuildError).
        self.job_env = ensure_env(settings.requirements, settings.env_cache, log=_say) if settings.requirements else None
        if settings.preload:
            check_preload(self.job_env, settings.preload)
        self.runtime_dir = tempfile.mkdtemp(prefix="warmfleet-")
        # 0711: job uids of --no-sandbox pods must traverse to their workspaces below;
        # nobody but us can list it, and the socket directory inside stays 0700.
        os.chmod(self.runtime_dir, 0o711)
        self.socket_dir = os.path.join(self.runtime_dir, "sock")
        self.socket_path = os.path.join(self.socket_dir, "redis.sock")
        self.runsc_root = os.path.join(self.runtime_dir, "runsc")
        self.guard: watchdog.Guard | None = None  # ends all of this if we die (kill -9)
        self.root: rootfs.RootFs | None = None  # the pods' root, shared read-only by all
        try:
            self._start_guard()  # from here on, nothing outlives this process
            for d in (self.socket_dir, self.runsc_root, os.path.join(self.runtime_dir, "logs")):
                os.makedirs(d, mode=0o700)
            if settings.sandbox:
                self.root = rootfs.build(
                    os.path.join(self.runtime_dir, "root"), slots=settings.slots, uid_base=SLOT_UID_BASE,
                    workspace_root=WORKSPACE_ROOT_IN_SANDBOX, socket_dir_in_sandbox=SOCKET_DIR_IN_SANDBOX,
                    sessions=settings.sessions, session_root=SESSION_ROOT_IN_SANDBOX,
                    read_only_paths=[*rootfs.interpreter_paths(), *settings.read_only_paths,
                                     *([self.job_env.root] if self.job_env else [])],
                )
        except BaseException:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            if self.guard is not None:
                self.guard.release()
            raise
        self.redis: EmbeddedRedis | None = None
        self.proxies: list[UnixSocketProxy] = []
        self.egress: LocalEgressProxy | None = None
        if settings.egress_allow.strip() not in ("", "none"):
            self.egress = LocalEgressProxy(self.runtime_dir, self.socket_dir, settings)
            if self.root is not None:  # pods see the proxy's job socket, read-only, and nothing else of it
                self.root.add_bind(self.egress.dir, EGRESS_DIR_IN_SANDBOX)
        self.pods: list[Pod] = []
        self.client_url = ""
        self._upstream_url = settings.redis_url
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self.restarts = 0

    def _start_guard(self) -> None:
        """Sweep fleets whose owner died, then record ours and start its watchdog."""
        records = os.path.join(discovery.private_dir(self.settings.state_dir), watchdog.RECORDS_DIR)
        for gone in watchdog.sweep(records):
            log.warning("removed a fleet left by a dead `warmfleet up`", extra={"runtime_dir": gone})
        self.guard = watchdog.Guard(
            records, self.runtime_dir, runsc=self.runsc, runsc_root=self.runsc_root, url_file=discovery.url_file(self.settings.state_dir)
        )
        self.guard.start()

    def record_process(self, pid: int) -> None:
        if self.guard is not None:
            self.guard.add_process(pid)

    # -- redis ------------------------------------------------------------------------
    def _start_redis(self) -> None:
        if self._upstream_url is None:
            self.redis = EmbeddedRedis(os.path.join(self.runtime_dir, "redis"), self.socket_path)
            self.redis.start()
            assert self.redis.proc is not None
            self.record_process(self.redis.proc.pid)
            self.client_url = self.redis.url
            return
        upstream = redis_connect.parse(self._upstream_url)
        parsed = urllib.parse.urlparse(self._upstream_url)
        if upstream.kind == "sentinel":
            # One socket; each new connection goes to the primary the Sentinels name now,
            # so pods follow a failover by reconnecting.
            self.proxies = [UnixSocketProxy(self.socket_path, redis_connect.sentinel_primary(upstream))]
        elif upstream.kind == "cluster":
            # A socket per node (the pods' cluster client maps host:port to it: relay_dir).
            self.proxies = [
                UnixSocketProxy(redis_connect.relay_socket(self.socket_dir, host, port), (host, port))
                for host, port in redis_connect.cluster_nodes(self._upstream_url)
            ]
        elif parsed.scheme == "unix":
            self.proxies = [UnixSocketProxy(self.socket_path, parsed.path)]
        elif parsed.scheme == "redis":
            self.proxies = [UnixSocketProxy(self.socket_path, (parsed.hostname or "127.0.0.1", parsed.port or 6379))]
        else:
            raise ValueError(f"unsupported redis URL scheme {parsed.scheme!r} for a local fleet: "
                             "use redis://, unix://, redis+sentinel:// or redis+cluster://")
        for proxy in self.proxies:
            proxy.start()
        self.client_url = self._upstream_url

    def executor_url(self, socket_path: str) -> str:
        """The URL executors use: the same credentials and db, over our Unix socket."""
        if self._upstream_url is None:
            return f"unix://{socket_path}"
        upstream = redis_connect.parse(self._upstream_url)
        if upstream.kind == "cluster":
            query = urllib.parse.urlencode({"relay_dir": os.path.dirname(socket_path)})
            return f"{self._upstream_url.split('?')[0]}?{query}"
        if upstream.kind == "sentinel":
            auth = f":{urllib.parse.quote(upstream.password, safe='')}@" if upstream.password else ""
            if upstream.username:
                auth = f"{urllib.parse.quote(upstream.username, safe='')}{auth or '@'}"
            return f"unix://{auth}{socket_path}?db={upstream.db}"
        parsed = urllib.parse.urlparse(self._upstream_url)
        auth = ""
        if parsed.username or parsed.password:
            auth = f"{urllib.parse.quote(parsed.username or '')}:{urllib.parse.quote(parsed.password or '')}@"
        db = urllib.parse.parse_qs(parsed.query).get("db", ["0"])[0] if parsed.scheme == "unix" else (
            (parsed.path or "/0").lstrip("/") or "0"
        )
        return f"unix://{auth}{socket_path}?db={db}"

    # -- lifecycle --------------------------------------------------------------------
    def start(self, ready_timeout: float = 60.0) -> None:
        try:
            self._start_redis()
            if self.egress is not None:
                self.egress.start()
                assert self.egress.proc is not None
                self.record_process(self.egress.proc.pid)  # the watchdog ends it if we die
            for i in range(self.settings.pods):
                pod = Pod(self, i)
                self.pods.append(pod)
                pod.start()
            self.wait_ready(self.settings.pods * self.settings.slots, ready_timeout)
        except BaseException:
            self.stop()
            raise
        if self._upstream_url is None:
            if self.guard is not None:
                self.guard.update(url=self.client_url)
            discovery.write_url(self.client_url, self.settings.state_dir)
        self._monitor = threading.Thread(target=self._watch, name="pod-monitor", daemon=True)
        self._monitor.start()
        if self.recycle_policy is not None:
            from warmfleet.local.recycler import LocalRecycler

            self.recycler = LocalRecycler(self, self.recycle_policy)
            self.recycler.start()

    def wait_ready(self, slots: int, timeout: float) -> fleet_status.PoolStatus:
        r = redis_connect.connect(self.client_url, decode_responses=True)
        try:
            return fleet_status.wait_ready(r, self.settings.pool, slots, timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log_tails()}") from None
        finally:
            r.close()

    def log_tails(self, lines: int = 15) -> str:
        """The end of every pod's log: what a failed start-up needs to show before cleanup."""
        out = []
        for pod in self.pods:
            try:
                with open(pod.log_path, errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                tail = ["(no log)"]
            out.append(f"--- {pod.pod_id} ---\n" + "\n".join(tail))
        return "\n".join(out)

    def _watch(self) -> None:
        """Replace a pod whose sandbox died (the OOM killer, an operator's kill)."""
        while not self._stopping.wait(self.settings.monitor_s):
            for i, pod in enumerate(list(self.pods)):
                if self._stopping.is_set() or pod.alive() or pod.recycling:
                    continue
                log.warning("pod died; replacing it", extra={"pod_id": pod.pod_id})
                pod.stop(1.0)
                self._forget(pod.pod_id)
                fresh = Pod(self, pod.index)
                self.pods[i] = fresh
                try:
                    fresh.start()
                    self.restarts += 1
                except (OSError, subprocess.SubprocessError) as exc:
                    log.error("could not replace pod", extra={"error": str(exc)})

    def replace_pod(self, old: Pod) -> Pod:
        """Delete a drained pod's sandbox and start a fresh pod in its place (recycling)."""
        old.stop(1.0)
        self._forget(old.pod_id)
        fresh = Pod(self, old.index)
        try:
            fresh.start()  # before it joins the list: the monitor would take a starting pod for dead
        except BaseException:
            old.recycling = False  # let the monitor replace it
            raise
        self.pods[self.pods.index(old)] = fresh
        return fresh

    def _forget(self, pod_id: str) -> None:
        """A dead pod cannot deregister itself: drop its snapshot so status is true at once."""
        try:
            r = redis_connect.connect(self.client_url, decode_responses=True)
            try:
                r.delete(keys.pod(self.settings.pool, pod_id))
                r.zrem(keys.pods(self.settings.pool), pod_id)
            finally:
                r.close()
        except redis.exceptions.RedisError as exc:
            log.warning("could not deregister a dead pod", extra={"pod_id": pod_id, "error": str(exc)})

    def stop(self) -> None:
        """Drain every pod, then remove everything this fleet created."""
        self._stopping.set()
        if self.recycler is not None:
            self.recycler.stop()
        if self._monitor is not None:
            self._monitor.join(timeout=10)
        threads = [threading.Thread(target=p.stop, args=(self.settings.drain_timeout_s,)) for p in self.pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for proxy in self.proxies:
            proxy.stop()
        if self.egress is not None:
            self.egress.stop()
        if self.redis is not None:
            discovery.clear_url(self.client_url, self.settings.state_dir)
            self.redis.stop()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if self.guard is not None:
            self.guard.release()
