"""warmfleet's HTTP front door: a stateless ASGI service in front of the fleet.

    from warmfleet.http.app import create_app
    from warmfleet.http.settings import http_settings
    app = create_app(http_settings(redis_url="redis://...", pools=["default"]))

It reaches the fleet only through the public client (`warmfleet.AsyncClient`), and keeps
nothing of its own in memory that another replica would need: tenants, keys, sandboxes
and quotas live in Redis (warmfleet/keys.py), so replicas behind a Service are
interchangeable. Protocols are routers on the app (app.PROTOCOL_ROUTERS).
"""
