"""The supervisor's getpid-free running-loop lookup keeps asyncio's answers."""

import asyncio
import asyncio.events
import threading

import pytest

from executor import running_loop


@pytest.fixture
def restore_asyncio(monkeypatch):
    for mod in (asyncio, asyncio.events):
        monkeypatch.setattr(mod, "get_running_loop", mod.get_running_loop)
        monkeypatch.setattr(mod, "_get_running_loop", mod._get_running_loop)


def test_same_answers_inside_outside_and_after_the_loop(restore_asyncio):
    seen = {}

    async def main():
        loop = asyncio.get_running_loop()
        running_loop.install(loop)
        assert asyncio.get_running_loop() is loop
        assert asyncio.events._get_running_loop() is loop
        assert asyncio.current_task() is not None  # asyncio.tasks goes through events.*
        async with asyncio.timeout(5):  # asyncio.timeouts too
            await asyncio.sleep(0)

        def elsewhere():  # another thread has no running loop
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                seen["thread"] = "no loop"
            seen["peek"] = asyncio.events._get_running_loop()

        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
        return loop

    loop = asyncio.run(main())
    assert seen == {"thread": "no loop", "peek": None}
    assert loop.is_closed()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # no loop runs any more
    assert asyncio.events._get_running_loop() is None
