from __future__ import annotations

import pytest
from support.sessions_fleet import start_fleet


@pytest.fixture(scope="module")
def sfleet():
    f = start_fleet()
    yield f
    f.stop()


@pytest.fixture
def sclient(sfleet):
    from dispatcher import Client

    with Client(sfleet.client_url) as c:
        yield c
