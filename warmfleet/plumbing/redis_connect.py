"""One way to open Redis from a URL, for every part of warmfleet (clients, executors, the
GC sidecar, the CLI). The URL forms:

- ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's own URL rules).
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/DB]``: the primary
  the Sentinels name for SERVICE, asked again on every (re)connect, so a failover is
  followed on the next retry. The password is the data nodes'; Sentinels that want one
  take ``?sentinel_password=...``.
- ``redis+cluster://[[user]:password@]host:port[,host:port...]``: Redis Cluster (any node
  bootstraps the rest). Keys of one pool share a hash tag (keys.py), so every command and
  script of a pool goes to one shard.

``?relay_dir=DIR`` on a cluster URL reaches every node ``host:port`` through the Unix socket
``DIR/node-HOST-PORT.sock`` instead of TCP: sandboxes have no network, and `warmfleet up`
relays one socket per cluster node (see warmfleet/local/uds_proxy.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import redis.connection

# redis.asyncio, redis.cluster and redis.sentinel are imported where used: a process
# pays only for the kind of Redis it talks to.

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
SINGLE_SCHEMES = ("redis", "rediss", "unix")
# Connection options that mean nothing to redis-py's cluster client (it retries itself).
_NOT_FOR_CLUSTER = ("retry_on_error", "health_check_interval")


@dataclass(frozen=True)
class RedisTarget:
    kind: str  # "single", "sentinel" or "cluster"
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    if item.startswith("["):  # [ipv6]:port
        host, _, rest = item[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    return host, int(port or default_port)


def parse(url: str) -> RedisTarget:
    """Raise ValueError naming the problem for anything that is not a usable Redis URL."""
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"not a Redis URL: {url!r}")
    scheme, rest = url.split("://", 1)
    if scheme in SINGLE_SCHEMES:
        return RedisTarget("single", url)
    if scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        raise ValueError(f"unsupported Redis URL scheme {scheme!r}: use redis://, rediss://, unix://, "
                         f"{SENTINEL_SCHEME}:// or {CLUSTER_SCHEME}://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    auth, _, hosts = netloc.rpartition("@")
    username = password = None
    if auth:
        user, has_pw, pw = auth.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(pw) if has_pw else None
    default_port = 26379 if scheme == SENTINEL_SCHEME else 6379
    try:
        nodes = tuple(_host_port(h, default_port) for h in hosts.split(",") if h)
    except ValueError:
        raise ValueError(f"bad host:port list {hosts!r} in the Redis URL") from None
    if not nodes:
        raise ValueError(f"no host:port in the Redis URL {scheme}://...")
    options = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
    if scheme == CLUSTER_SCHEME:
        if path.strip("/"):
            raise ValueError("a Redis Cluster URL takes no path: a cluster has only db 0")
        return RedisTarget("cluster", url, nodes, username=username, password=password, options=options)
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"a Sentinel URL is {SENTINEL_SCHEME}://host:port[,host:port...]/SERVICE[/DB]")
    db = parts[1] if len(parts) == 2 else options.get("db", "0")
    if not db.isdigit():
        raise ValueError(f"bad db {db!r} in the Sentinel URL")
    return RedisTarget("sentinel", url, nodes, service=urllib.parse.unquote(parts[0]), db=int(db),
                       username=username, password=password, options=options)


def relay_socket(relay_dir: str, host: str, port: int) -> str:
    """The Unix socket that stands for cluster node host:port (see module doc)."""
    return os.path.join(relay_dir, f"node-{host.replace('/', '_')}-{port}.sock")


class _RelayedConnection(redis.connection.Connection):
    relay_dir = ""

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.socket_connect_timeout)
        try:
            sock.connect(relay_socket(self.relay_dir, self.host, int(self.port)))
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.socket_timeout)
        return sock


def _async_relayed_connection() -> type:
    from redis.asyncio.connection import Connection

    class _AsyncRelayedConnection(Connection):
        relay_dir = ""

        async def _connect(self) -> None:
            async with asyncio.timeout(self.socket_connect_timeout):
                self._reader, self._writer = await asyncio.open_unix_connection(
                    relay_socket(self.relay_dir, self.host, int(self.port))
                )

    return _AsyncRelayedConnection


def _cluster_kwargs(target: RedisTarget, kwargs: dict) -> dict:
    out = {k: v for k, v in kwargs.items() if k not in _NOT_FOR_CLUSTER}
    out.update(username=target.username, password=target.password)
    return out


def _relay_class(target: RedisTarget, base: type) -> type:
    return type(base.__name__, (base,), {"relay_dir": target.options["relay_dir"]})


def _sentinel_kwargs(target: RedisTarget, kwargs: dict) -> dict:
    """Options for talking to the Sentinels themselves: short timeouts, their own password."""
    return {"password": target.options.get("sentinel_password"), "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0}


def connect(url: str, **kwargs) -> "redis.Redis | redis.cluster.RedisCluster":
    """A synchronous client for any warmfleet Redis URL; kwargs are redis-py's."""
    target = parse(url)
    if target.kind == "cluster":
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(h, p) for h, p in target.nodes]
        cluster_kwargs = _cluster_kwargs(target, kwargs)
        if "relay_dir" in target.options:
            cluster_kwargs["connection_class"] = _relay_class(target, _RelayedConnection)
        return RedisCluster(startup_nodes=nodes, **cluster_kwargs)
    if target.kind == "sentinel":
        from redis.sentinel import Sentinel

        sentinel = Sentinel(list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, kwargs))
        return sentinel.master_for(target.service, db=target.db, username=target.username,
                                   password=target.password, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def connect_async(url: str, *, blocking_pool: bool = False, **kwargs) -> "redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster":
    """An asyncio client for any warmfleet Redis URL. `blocking_pool`: a full pool makes a
    caller wait for a connection instead of failing (one server only; Sentinel and Cluster
    pools grow as needed, max_connections ignored)."""
    target = parse(url)
    if target.kind == "cluster":
        from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
        from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

        kwargs.pop("max_connections", None)  # per node in the cluster client: keep its default
        nodes = [AsyncClusterNode(h, p) for h, p in target.nodes]
        client = AsyncRedisCluster(startup_nodes=nodes, **_cluster_kwargs(target, kwargs))
        if "relay_dir" in target.options:
            # The asyncio cluster client takes no connection_class: every node it will ever
            # make is built from connection_kwargs (shared with its nodes manager), and the
            # startup nodes already exist. Nothing has connected yet (that is lazy).
            relayed = _relay_class(target, _async_relayed_connection())
            client.connection_kwargs["connection_class"] = relayed
            client.nodes_manager.connection_kwargs["connection_class"] = relayed
            for node in client.nodes_manager.startup_nodes.values():
                node.connection_class = relayed
        return client
    if target.kind == "sentinel":
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel

        kwargs.pop("max_connections", None)
        sentinel = AsyncSentinel(list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, kwargs))
        return sentinel.master_for(target.service, db=target.db, username=target.username,
                                   password=target.password, **kwargs)
    import redis.asyncio as aioredis

    if blocking_pool:
        return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, timeout=None, **kwargs))
    return aioredis.from_url(url, **kwargs)


def sentinel_primary(target: RedisTarget) -> "Callable[[], tuple[str, int]]":
    """A function answering the primary's address the Sentinels name now (raises
    redis.sentinel.MasterNotFoundError mid-failover): for relays that follow failovers."""
    from redis.sentinel import Sentinel

    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, {}))
    return lambda: sentinel.discover_master(target.service)


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """Every node (primaries and replicas) of the cluster at `url`, as the cluster names them."""
    client = connect(url)
    try:
        return sorted({(n.host, int(n.port)) for n in client.get_nodes()})
    finally:
        client.close()
