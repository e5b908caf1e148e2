"""`warmfleet up` and `warmfleet demo`: a fleet on this machine (warmfleet/local), in the foreground
until a signal, or for one job."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

EXIT_USAGE = 2


class _Shutdown(Exception):
    """A signal arrived while the fleet was still starting."""


def cmd_up(args: argparse.Namespace) -> int:
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.local.jobenv import EnvBuildError
    from warmfleet.local.pod import NO_SANDBOX_WARNING
    from warmfleet.local.rootfs import LayoutError
    from warmfleet.local.sandbox import RunscMissing
    from warmfleet.settings import FleetSettings, SettingsError, env_name, load

    if args.http and not args.redis_url:
        from warmfleet.cli.http import is_loopback, split_listen

        if not is_loopback(split_listen(args.http)[0]):  # a fresh embedded Redis holds no keys
            print(f"warmfleet up: refusing --http {args.http}: a non-loopback address needs API keys, and a new "
                  "fleet has none; listen on 127.0.0.1, or use --redis-url with keys added (warmfleet keys add)",
                  file=sys.stderr)
            return EXIT_USAGE
    overrides = {
        k: v
        for k, v in (("pods", args.pods), ("slots", args.slots), ("redis_url", args.redis_url), ("pool", args.pool),
                     ("platform", args.platform), ("requirements", args.requirements),
                     ("egress_allow", args.egress_allow), ("sessions", args.sessions))
        if v is not None
    }
    if args.preload is not None:
        overrides["preload"] = [m.strip() for m in args.preload.split(",") if m.strip()]
    if args.pools is not None:  # the pool's definition; flags given on the command line win
        from warmfleet.local.pools import PoolsError, local_settings

        try:
            overrides = {**local_settings(args.pools, args.pool or "default"), **overrides}
        except PoolsError as exc:
            print(f"warmfleet up: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.no_sandbox:
        overrides["sandbox"] = False
    try:  # before anything starts: an unknown WARMFLEET_* name stops here, naming the closest one
        settings = load(FleetSettings, overrides)
    except SettingsError as exc:
        print(f"warmfleet up: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_config:  # what this command line would run with, and where each value came from
        from warmfleet.settings.show import render

        print(render(settings))
        return 0
    if not settings.sandbox:
        print(NO_SANDBOX_WARNING, file=sys.stderr, flush=True)
    try:
        fleet = LocalFleet(settings, recycle_policy=_recycle_policy(args))
    except (RunscMissing, LayoutError, EnvBuildError, ValueError) as exc:  # ValueError: a bad --egress-allow entry
        print(f"warmfleet up: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for warning in fleet.warnings:
        print(f"warmfleet up: warning: {warning}", file=sys.stderr, flush=True)
    stop = threading.Event()
    started = False

    def on_signal(signum: int, _frame: object) -> None:
        if not started:
            raise _Shutdown()
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    try:
        fleet.start()
        started = True
    except _Shutdown:
        print("warmfleet up: interrupted while starting; cleaned up", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - report start-up failure plainly; fleet.start cleaned up
        print(f"warmfleet up: could not start the fleet: {exc}", file=sys.stderr)
        return 1
    where = (
        f"in gVisor sandboxes (runsc {fleet.sandbox_version}, platform {settings.platform})"
        if settings.sandbox else "as plain processes (NO SANDBOX)"
    )
    print(
        f"warmfleet: {settings.pods} pod(s) x {settings.slots} slot(s) ready {where} "
        f"in {time.monotonic() - t0:.2f} s\n"
        f"warmfleet: clients use {env_name('redis_url')}={fleet.client_url}\n"
        f"warmfleet: network egress: {settings.egress_allow if fleet.egress else 'none (jobs reach nothing)'}\n"
        f"warmfleet: Ctrl-C or SIGTERM drains and stops",
        flush=True,
    )
    service = None
    if args.http:
        from warmfleet.cli.http import start_for_up

        try:
            service = start_for_up(args.http, fleet.client_url, settings.pool)
        except (ValueError, RuntimeError, ImportError) as exc:
            print(f"warmfleet up: --http: {exc}", file=sys.stderr, flush=True)
            fleet.stop()
            return EXIT_USAGE
    stop.wait()
    if service is not None:
        service.stop()
    print("warmfleet: draining and stopping...", file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish cleaning up even on a second Ctrl-C
    fleet.stop()
    print("warmfleet: stopped; nothing left behind", file=sys.stderr, flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Bring up a one-pod fleet on an embedded Redis, run one job in gVisor, shut down."""
    from dispatcher import Client
    from warmfleet.local.fleet import LocalFleet
    from warmfleet.local.rootfs import LayoutError
    from warmfleet.local.sandbox import RunscMissing
    from warmfleet.settings import FleetSettings, SettingsError, load

    try:
        fleet = LocalFleet(load(FleetSettings, {"pods": 1, "slots": args.slots, "redis_url": None, "sandbox": True}))
    except (RunscMissing, LayoutError, SettingsError) as exc:
        print(f"warmfleet demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        t0 = time.monotonic()
        fleet.start()
        print(f"fleet up in {time.monotonic() - t0:.2f} s at {fleet.client_url}")
        code = 'import os; print(open("/proc/version").read().strip()); print("uid", os.getuid(), "cwd", os.getcwd())'
        with Client(fleet.client_url) as client:
            client.run("print(1)")  # warm path
            t1 = time.perf_counter()
            result = client.run(code)
            elapsed = (time.perf_counter() - t1) * 1000
        print(f"job {result.job_id}: status={result.status.value} exit_code={result.exit_code} in {elapsed:.1f} ms")
        print(result.stdout, end="")
        return 0 if result.ok else 1
    finally:
        fleet.stop()
        print("fleet stopped; nothing left behind")


def _recycle_policy(args: argparse.Namespace):
    """`up --recycle-max-age/--recycle-max-jobs`: the GC sidecar's policy, applied locally."""
    if args.recycle_max_age is None and args.recycle_max_jobs is None:
        return None
    from warmfleet.settings import RecyclePolicy

    return RecyclePolicy(
        max_age_s=args.recycle_max_age or 0, max_jobs=args.recycle_max_jobs or 0,
        min_serving_slots=args.recycle_min_serving, check_s=1.0,
    )


def add_up_parser(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="run a fleet on this machine until SIGINT/SIGTERM")
    up.add_argument("--pods", type=int)
    up.add_argument("--slots", type=int)
    up.add_argument("--sessions", type=int, help="session capacity per pod (default 4; 0: no sessions)")
    up.add_argument("--redis-url", help="use this Redis instead of an embedded one: redis://, unix://, "
                    "redis+sentinel://HOST:PORT[,...]/SERVICE[/DB] or redis+cluster://HOST:PORT[,...]")
    up.add_argument("--pool")
    up.add_argument("--no-sandbox", action="store_true", help="run executors WITHOUT gVisor (unsafe)")
    up.add_argument("--platform", choices=["ptrace", "systrap", "kvm"],
                    help="gVisor platform (runsc --platform; default ptrace, measured fastest here; the platform setting)")
    up.add_argument("--pools", metavar="FILE",
                    help="take --pool's slots, job environment and preload from this pools file (k8s/pools.yaml)")
    up.add_argument("--requirements", metavar="FILE",
                    help="job environment: pip requirements built once into a cached venv that jobs import from")
    up.add_argument("--preload", metavar="MODULES",
                    help="comma-separated modules imported before each job is forked, e.g. numpy,pandas,matplotlib.pyplot")
    up.add_argument(
        "--egress-allow", metavar="HOST[:PORT],...",
        help="destinations jobs may reach through the fleet's egress proxy: host[:port], *.domain[:port], "
        "cidr[:port] (default: none)",
    )
    up.add_argument("--recycle-max-age", type=float, metavar="S", help="recycle a pod warm longer than S seconds")
    up.add_argument("--recycle-max-jobs", type=int, metavar="N", help="recycle a pod after N jobs")
    up.add_argument("--recycle-min-serving", type=int, default=0, metavar="N",
                    help="never recycle while the other pods would serve fewer than N slots")
    up.add_argument("--http", metavar="HOST:PORT",
                    help="also serve the HTTP front door (E2B, SandboxFusion, /v1, /mcp) there; prints the "
                    "E2B_* lines to export (on loopback with no keys, makes one)")
    up.add_argument("--print-config", action="store_true",
                    help="print the effective settings (flags, environment, file, defaults) and exit without starting")
    up.set_defaults(func=cmd_up)



def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="start a fleet, run one job in gVisor, stop")
    demo.add_argument("--slots", type=int, default=2)
    demo.set_defaults(func=cmd_demo)
