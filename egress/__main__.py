"""``python -m egress``: one pool's egress proxy, settings from WARMFLEET_EGRESS_*."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys


async def serve() -> int:
    from prometheus_client import start_http_server

    from egress.server import EgressProxy
    from egress.settings import EgressSettings

    settings = EgressSettings.load()
    proxy = EgressProxy(settings)
    await proxy.start()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, settings.metrics_addr, registry=proxy.registry)
    logging.getLogger("warmfleet.egress").info(
        "egress proxy ready", extra={"pool": settings.pool, "allow": settings.allow, "listen": settings.listen}
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.stop()
    return 0


def main() -> int:
    from warmfleet.plumbing import logs

    logs.setup()
    return asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
