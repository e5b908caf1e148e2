"""`warmfleet serve` (the HTTP front door: E2B, SandboxFusion, /v1, MCP over HTTP),
`warmfleet keys add|list|revoke` (tenants' API keys), and what `warmfleet up --http` adds
to a local fleet. Needs the `http` extra (FastAPI, uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import threading
import time

from warmfleet.settings import env_name

EXIT_USAGE = 2
START_TIMEOUT_S = 30.0
# asyncio's own loop, never uvloop even where it is installed: under uvloop the service
# missed some clients' disconnects (measured: the E2B disconnect test failed about one run
# in two), and a client that leaves must stop its cell.
LOOP = "asyncio"


def _redis_url(args: argparse.Namespace) -> str | None:
    return args.redis_url or os.environ.get(env_name("redis_url"))


def _store(url: str):
    from warmfleet.http.tenants import TenantStore
    from warmfleet.plumbing import redis_connect

    return TenantStore(redis_connect.connect(url, decode_responses=True))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_listen(text: str, default_port: int = 8000) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    return host.strip("[]") or "127.0.0.1", int(port)


# -- warmfleet keys --------------------------------------------------------------------
def cmd_keys(args: argparse.Namespace) -> int:
    from warmfleet.http.tenants import Tenant, parse_rate

    url = _redis_url(args)
    if not url:
        print(f"warmfleet keys: give --redis-url (or set {env_name('redis_url')}): keys live in the fleet's Redis",
              file=sys.stderr)
        return EXIT_USAGE
    store = _store(url)
    if args.keys_command == "add":
        try:
            tenant = Tenant(name=args.tenant, pools=[p.strip() for p in args.pools.split(",") if p.strip()],
                            max_sandboxes=args.max_sandboxes, max_running=args.max_running,
                            rate_per_s=parse_rate(args.rate) if args.rate else None)
        except ValueError as exc:
            print(f"warmfleet keys add: {exc}", file=sys.stderr)
            return EXIT_USAGE
        key = store.add(tenant)
        print(key)
        print(f"warmfleet: key for tenant {tenant.name!r} (pools {', '.join(tenant.pools)}); it is shown only now",
              file=sys.stderr)
        return 0
    if args.keys_command == "list":
        rows = store.list()
        if not rows:
            print("no keys", file=sys.stderr)
        for key_id, t in rows:
            quotas = ", ".join(f"{n}={v:g}" if isinstance(v, float) else f"{n}={v}" for n, v in
                               (("max_sandboxes", t.max_sandboxes), ("max_running", t.max_running),
                                ("rate_per_s", t.rate_per_s)) if v is not None) or "no quotas"
            created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.created_at))
            print(f"{key_id}  {t.name:<16} pools={','.join(t.pools):<24} {quotas}  (created {created} UTC)")
        return 0
    removed = store.revoke(args.key)
    if removed == 1:
        print(f"warmfleet: revoked {args.key[:16]}", file=sys.stderr)
        return 0
    why = "matches several keys: give more of its id" if removed < 0 else "no such key"
    print(f"warmfleet keys revoke: {why}", file=sys.stderr)
    return 1


# -- the service -----------------------------------------------------------------------
class Service:
    """The app under uvicorn in a thread (for `up --http`, and tests)."""

    def __init__(self, redis_url: str, pools: list[str], host: str, port: int, **settings) -> None:
        import uvicorn

        from warmfleet.http.app import create_app
        from warmfleet.http.settings import http_settings

        self.app = create_app(http_settings(redis_url=redis_url, pools=pools, **settings))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level="warning",
                                                    lifespan="on", timeout_keep_alive=30, loop=LOOP))
        self.thread = threading.Thread(target=self.server.run, name="warmfleet-http", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:  # poll with a deadline: uvicorn sets it once it listens
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP service did not start (is the port free?)")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=START_TIMEOUT_S)


def start_for_up(listen: str, redis_url: str, pool: str) -> Service:
    """`up --http HOST:PORT`: the service over the local fleet; on loopback with no keys
    it makes one. Prints the lines to paste. Raises ValueError when refused."""
    host, port = split_listen(listen)
    store = _store(redis_url)
    made = None
    if not store.count():
        if not is_loopback(host):
            raise ValueError(f"refusing to listen on {host} with no API keys: add one with "
                             f"`warmfleet keys add --tenant NAME --pools {pool} --redis-url {redis_url}`, "
                             "or listen on 127.0.0.1")
        from warmfleet.http.tenants import Tenant

        made = store.add(Tenant(name="local", pools=[pool]))
    service = Service(redis_url, [pool], host, port)
    service.start()
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    key = made or "<your key: warmfleet keys add ...>"
    print(f"warmfleet: HTTP front door on {url} (E2B, SandboxFusion /run_code, /v1, /mcp)", flush=True)
    if made:
        print("warmfleet: made an API key for tenant 'local' (loopback, none configured):", flush=True)
    print(f"export E2B_API_URL={url} E2B_SANDBOX_URL={url} E2B_API_KEY={key}", flush=True)
    return service


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from warmfleet.http.app import create_app
    from warmfleet.http.settings import HttpSettings
    from warmfleet.settings import SettingsError, load

    flags = {name: value for name, value in (
        ("redis_url", args.redis_url), ("http_listen", args.listen), ("http_metrics_port", args.metrics_port),
        ("http_pools", [p.strip() for p in args.pools.split(",") if p.strip()] if args.pools else None),
    ) if value is not None}
    try:
        settings = load(HttpSettings, flags)  # flags, then WARMFLEET_* (unknown names refused), then defaults
    except SettingsError as exc:
        print(f"warmfleet serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not settings.redis_url:
        print(f"warmfleet serve: give --redis-url (or {env_name('redis_url')}): the fleet's Redis", file=sys.stderr)
        return EXIT_USAGE
    host, port = split_listen(settings.http_listen)
    app = create_app(settings)
    if settings.http_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.http_metrics_port, addr=settings.http_metrics_addr,
                          registry=app.state.metrics_registry)
    # Stateless: every replica is alike (tenants, sandboxes and quotas are in Redis), so
    # scale by replicas (the HPA), not by workers inside one.
    uvicorn.run(app, host=host, port=port, log_level=args.log_level, timeout_keep_alive=30, loop=LOOP,
                timeout_graceful_shutdown=args.graceful_s, proxy_headers=True, server_header=False)
    return 0


def add_parsers(sub) -> None:
    serve = sub.add_parser("serve", help="the HTTP front door (E2B, SandboxFusion, /v1, MCP over HTTP); "
                           "stateless, run several (needs warmfleet[http])")
    serve.add_argument("--listen", metavar="HOST:PORT", help=f"default: {env_name('http_listen')} or 127.0.0.1:8000")
    serve.add_argument("--redis-url")
    serve.add_argument("--pools", help=f"comma-separated pools served (default: {env_name('http_pools')} or default)")
    serve.add_argument("--metrics-port", type=int,
                       help=f"Prometheus metrics on this port, not on the tenants' "
                            f"(default: {env_name('http_metrics_port')}, 0: none)")
    serve.add_argument("--graceful-s", type=float, default=30.0, help="on SIGTERM, let streams finish this long")
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="tenants' API keys for the HTTP front door (stored as hashes in Redis)")
    keys.add_argument("--redis-url")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    add = ksub.add_parser("add", help="make a key for a tenant; prints it once")
    add.add_argument("--tenant", required=True)
    add.add_argument("--pools", required=True, help="comma-separated; the first is the tenant's default")
    add.add_argument("--max-sandboxes", type=int, help="open sandboxes/sessions at once")
    add.add_argument("--max-running", type=int, help="executions in flight at once")
    add.add_argument("--rate", help="requests per second, e.g. 20/s")
    add.add_argument("--redis-url", dest="redis_url_sub")
    ksub.add_parser("list", help="key ids, tenants, pools, quotas (never the keys)").add_argument(
        "--redis-url", dest="redis_url_sub")
    rv = ksub.add_parser("revoke", help="remove a key (the key itself, or its id from `keys list`)")
    rv.add_argument("key")
    rv.add_argument("--redis-url", dest="redis_url_sub")
    keys.set_defaults(func=lambda a: cmd_keys(_merge_url(a)))


def _merge_url(args: argparse.Namespace) -> argparse.Namespace:
    args.redis_url = getattr(args, "redis_url_sub", None) or args.redis_url
    return args
