"""warmfleet: run untrusted code snippets on a warm executor fleet.

    from warmfleet import Client, AsyncClient, Result

This package is also the bottom of the import graph (the contract: schema, keys,
messages), and the lean slot runner imports `warmfleet.contract.messages` through it: so this
file imports nothing. The client names resolve on first use (PEP 562).
"""

__version__ = "0.1.0"

_LAZY = {
    "Client": "dispatcher.client",
    "AsyncClient": "dispatcher.aio",
    "Chunk": "dispatcher.request",
    "InvalidJob": "dispatcher.errors",
    "NoFleetConfigured": "dispatcher.errors",
    "WaitTimeout": "dispatcher.errors",
    "SessionEnded": "dispatcher.errors",
    "SessionLost": "dispatcher.errors",
    "Session": "dispatcher.client",
    "AsyncSession": "dispatcher.aio",
    "Result": "warmfleet.contract.schema",
    "FleetLimits": "warmfleet.contract.schema",
    "Status": "warmfleet.contract.messages",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'warmfleet' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
