"""AsyncClient.close() ends its pub/sub listener even when the cancel is swallowed.

A cancellation that lands while a Redis command completes can be lost (the claim
refresher in executor/delivery.py hung the chaos test that way). close() must not rely
on it: the listener also stops on a flag it checks after every read. Client logic: on
warmfleet.testing's fake Redis, whose pub/sub is redis-py's own PubSub."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio.client

from warmfleet.testing import StandInFleet


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore::warmfleet.testing.NotIsolatedWarning")
async def test_close_returns_when_the_listener_swallows_its_cancel(monkeypatch):
    original = redis.asyncio.client.PubSub.get_message
    swallowed = asyncio.Event()

    async def get_message_that_swallows_cancel(self, *args, **kwargs):
        try:
            return await original(self, *args, **kwargs)
        except asyncio.CancelledError:
            swallowed.set()
            return None  # as if the read had finished just as the cancel arrived

    monkeypatch.setattr(redis.asyncio.client.PubSub, "get_message", get_message_that_swallows_cancel)
    with StandInFleet(slots=1) as fleet:
        client = fleet.async_client()
        await client._ensure_listener()  # subscribed: the listener now waits in get_message
        await asyncio.wait_for(client.close(), timeout=10)
    assert swallowed.is_set()  # the cancel really was lost, and close() still returned
    assert client._listener is None
