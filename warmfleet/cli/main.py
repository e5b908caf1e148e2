"""The `warmfleet` command: up, run, status, demo."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

EXIT_USAGE = 2
EXIT_NO_RESULT = 3
POOL_HELP = "the pool (default: the pool setting, else 'default')"


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


def _read_code(args: argparse.Namespace) -> str:
    if args.code is not None:
        return args.code
    if args.file in (None, "-"):
        return sys.stdin.read()
    with open(args.file, encoding="utf-8") as f:
        return f.read()


def _exit_code_for(result) -> int:
    if result.exit_code is None:
        return EXIT_USAGE if result.status.value == "rejected" else EXIT_NO_RESULT
    if result.exit_code < 0:
        return 128 - result.exit_code
    return result.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    from dispatcher import Client, InvalidJob, NoFleetConfigured

    if args.batch is not None:
        from warmfleet.cli import batch

        return batch.main(args)
    try:
        code = _read_code(args)
        with Client(args.redis_url, pool=args.pool) as client:
            result = client.run(code, timeout=args.timeout, cpu_time=args.cpu_time, memory_mb=args.memory_mb)
    except (InvalidJob, NoFleetConfigured, OSError) as exc:
        print(f"warmfleet run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from warmfleet.cli.shell import show_outputs, write_outputs

    if args.out is not None:
        _write_files(result, args.out)
        write_outputs(result, args.out, sys.stderr)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        sys.stdout.write(result.stdout)
        show_outputs(result, sys.stdout, images=False)  # the last expression's value, as a REPL prints it
        sys.stderr.write(result.stderr)
        if result.status.value != "ok":
            print(f"warmfleet: {result.status.value}: {result.error}", file=sys.stderr)
    return _exit_code_for(result)


def _write_files(result, out_dir: str) -> None:
    """`run --out DIR`: the job's returned out/ files (figures included), under DIR only."""
    from warmfleet.contract.schema import JobError, check_relative_path

    for name in result.files:
        try:
            check_relative_path(name)
        except JobError:
            print(f"warmfleet run: skipped returned file {name!r}: not a plain relative path", file=sys.stderr)
            continue
        path = os.path.join(out_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(result.file(name))
        print(f"warmfleet: wrote {path}", file=sys.stderr)
    if result.files_truncated:
        print("warmfleet: some returned files were left out (count or size limit)", file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    from dispatcher.request import resolve_url
    from warmfleet.settings import ClientSettings, SettingsError, load
    from warmfleet.plumbing import redis_connect
    from warmfleet.cli import status as fleet_status

    try:
        settings = load(ClientSettings, strict=False)
        url = resolve_url(args.redis_url, settings)
    except (RuntimeError, SettingsError) as exc:
        print(f"warmfleet status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.pool = args.pool or settings.pool
    r = redis_connect.connect(url, decode_responses=True)
    if args.wait_ready is not None:
        try:
            st = fleet_status.wait_ready(r, args.pool, args.wait_ready, args.timeout)
        except TimeoutError as exc:
            print(f"warmfleet status: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(st.as_dict()) if args.json else fleet_status.format_table(st))
        return 0
    if args.watch:
        # Raise, not Event.set(): a handler that set an Event could land while this thread
        # held the Event's own lock inside wait(), and deadlock (seen: a hung test).
        signal.signal(signal.SIGINT, _stop_watching)
        signal.signal(signal.SIGTERM, _stop_watching)
    try:
        return _status_loop(args, r, url, fleet_status)
    except _StopWatching:
        return 0


class _StopWatching(BaseException):
    pass


def _stop_watching(*_: object) -> None:
    raise _StopWatching


def _status_loop(args: argparse.Namespace, r, url: str, fleet_status) -> int:
    import redis

    while True:
        try:
            st = fleet_status.read_status(r, args.pool)
        except redis.exceptions.ConnectionError as exc:
            print(f"warmfleet status: cannot reach {url}: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(st.as_dict()), flush=True)
        else:
            if args.watch:
                print("\x1b[2J\x1b[H", end="")
            print(fleet_status.format_table(st), flush=True)
        if not args.watch:
            return 0
        time.sleep(args.interval)  # the refresh period; Ctrl-C is how --watch ends


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from dispatcher.integrations import mcp_server
    except ImportError as exc:
        print(f"warmfleet mcp: {exc}; install it with: pip install 'warmfleet[mcp]'", file=sys.stderr)
        return EXIT_USAGE
    return mcp_server.main(args)


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


def cmd_k8s_generate(args: argparse.Namespace) -> int:
    from warmfleet.cli.k8s import generate

    return generate.generate(args)


def cmd_gc(args: argparse.Namespace) -> int:
    from gc_sidecar.main import main as gc_main

    return gc_main()


def cmd_config(args: argparse.Namespace) -> int:
    from warmfleet.settings import ROLES, SettingsError, load
    from warmfleet.settings.show import render

    try:
        settings = load(ROLES[args.role])
    except SettingsError as exc:
        print(f"warmfleet config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(render(settings, as_json=args.json))
    return 0


def _recycle_policy(args: argparse.Namespace):
    """`up --recycle-max-age/--recycle-max-jobs`: the GC sidecar's policy, applied locally."""
    if args.recycle_max_age is None and args.recycle_max_jobs is None:
        return None
    from warmfleet.settings import RecyclePolicy

    return RecyclePolicy(
        max_age_s=args.recycle_max_age or 0, max_jobs=args.recycle_max_jobs or 0,
        min_serving_slots=args.recycle_min_serving, check_s=1.0,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warmfleet", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

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

    run = sub.add_parser("run", help="submit one job, print its output, exit with its exit code")
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("-c", dest="code", help="code to run")
    src.add_argument("file", nargs="?", help="file with code, or - for stdin")
    src.add_argument("--batch", metavar="JOBS.jsonl", help="run every job in a JSON-lines file (- for stdin)")
    run.add_argument("--redis-url")
    run.add_argument("--pool", help=POOL_HELP)
    run.add_argument("--timeout", type=float, help="wall-clock seconds (default: the fleet's)")
    run.add_argument("--cpu-time", type=float, help="CPU seconds (default: the fleet's)")
    run.add_argument("--memory-mb", type=int, help="address-space MiB (default: the fleet's)")
    run.add_argument("--json", action="store_true", help="print the whole Result as JSON")
    run.add_argument("--out", metavar="DIR", help="write the files the job returned (out/, figures) into DIR")
    run.add_argument("-o", "--output", help="--batch: write results (JSON lines) here instead of stdout")
    run.add_argument("--concurrency", type=int, default=32, help="--batch: jobs in flight at once")
    run.add_argument("--no-progress", action="store_true", help="--batch: no progress bar")
    run.set_defaults(func=cmd_run)

    st = sub.add_parser("status", help="pods, slots, backlog")
    st.add_argument("--redis-url")
    st.add_argument("--pool", help=POOL_HELP)
    st.add_argument("--wait-ready", type=int, metavar="N", help="block until N slots are ready")
    st.add_argument("--timeout", type=float, default=60.0)
    st.add_argument("--json", action="store_true")
    st.add_argument("--watch", action="store_true")
    st.add_argument("--interval", type=float, default=1.0)
    st.set_defaults(func=cmd_status)

    from warmfleet.cli import shell

    shell.add_parser(sub)
    mcp = sub.add_parser("mcp", help="serve a run_python tool to MCP clients over stdio (needs warmfleet[mcp])")
    mcp.add_argument("--redis-url")
    mcp.add_argument("--pool", help=POOL_HELP)
    mcp.add_argument("--max-timeout", type=float, default=60.0, help="cap on a tool call's wall-clock seconds")
    mcp.add_argument("--stateless", action="store_true",
                     help="every call a fresh job (default: one session per connection, with a reset_session tool)")
    mcp.set_defaults(func=cmd_mcp)

    demo = sub.add_parser("demo", help="start a fleet, run one job in gVisor, stop")
    demo.add_argument("--slots", type=int, default=2)
    demo.set_defaults(func=cmd_demo)

    from warmfleet.contract import probe

    pr = sub.add_parser("probe", help="executor liveness/readiness from its health file: exit 0 or 1, no Redis")
    probe.add_arguments(pr)
    pr.set_defaults(func=probe.run)

    gc = sub.add_parser("gc", help="run the GC sidecar of one executor pod (Kubernetes; settings from WARMFLEET_*)")
    gc.set_defaults(func=cmd_gc)

    cfg = sub.add_parser("config", help="print a role's effective settings and where each came from (secrets masked)")
    cfg.add_argument("--role", default="up", choices=["up", "executor", "gc", "egress", "client", "celery", "http"],
                     help="whose settings (default: up, which includes the executor's it passes to its pods)")
    cfg.add_argument("--json", action="store_true")
    cfg.set_defaults(func=cmd_config)

    from warmfleet.cli import bench, http

    bench.add_parser(sub)
    http.add_parsers(sub)
    k8s = sub.add_parser("k8s", help="Kubernetes manifests").add_subparsers(dest="k8s_command", required=True)
    gen = k8s.add_parser("generate", help="write k8s/base from k8s/pools.yaml and the code (--check: exit 1 if stale)")
    gen.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    gen.add_argument("--dir", default="k8s", help="the k8s folder: pools.yaml in, base/ out (default: ./k8s)")
    gen.set_defaults(func=cmd_k8s_generate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:  # a lean install: the client is there, the server roles are not
        from warmfleet.plumbing.extras import fleet_extra_missing

        if (message := fleet_extra_missing(exc, f"warmfleet {args.command}")) is None:
            raise
        print(message, file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
