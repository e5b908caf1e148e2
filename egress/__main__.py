"""``python -m egress``: one pool's egress proxy, with its settings (warmfleet/settings/egress.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys


async def serve(settings) -> int:
    from prometheus_client import start_http_server

    from egress.server import EgressProxy

    proxy = EgressProxy(settings)
    await proxy.start()
    if settings.egress_metrics_port:
        start_http_server(settings.egress_metrics_port, settings.egress_metrics_addr, registry=proxy.registry)
    logging.getLogger("warmfleet.egress").info(
        "egress proxy ready", extra={"pool": settings.egress_pool, "allow": settings.egress_allow, "listen": settings.egress_listen}
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

    from warmfleet.settings import EgressSettings, SettingsError, load

    logs.setup()
    try:
        settings = load(EgressSettings)
    except SettingsError as exc:  # an unknown name (with the closest known one), a bad value
        logging.getLogger("warmfleet.egress").error("invalid settings", extra={"error": str(exc)})
        return os.EX_CONFIG  # as the executor
    logs.setup(settings.egress_log_level)
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ModuleNotFoundError as exc:  # a client-only install (pip install warmfleet): say which extra
        from warmfleet.plumbing.extras import exit_naming_the_extra

        exit_naming_the_extra(exc, "python -m egress")
