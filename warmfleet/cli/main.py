"""The `warmfleet` command: its parser, and the client-side commands (run, status, mcp, config); `up` and
`demo` are in local_fleet.py, `serve` and `keys` in http.py, `bench` and `shell` beside them."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

EXIT_USAGE = 2
EXIT_NO_RESULT = 3
POOL_HELP = "the pool (default: the pool setting, else 'default')"


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


def build_parser() -> argparse.ArgumentParser:
    from warmfleet.cli import local_fleet

    p = argparse.ArgumentParser(prog="warmfleet", description="The `warmfleet` command: up, run, status, demo.")
    sub = p.add_subparsers(dest="command", required=True)

    local_fleet.add_up_parser(sub)

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

    local_fleet.add_demo_parser(sub)

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
