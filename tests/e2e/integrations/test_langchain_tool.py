"""The LangChain tool on the real fleet, called the ways LangChain calls tools."""

from __future__ import annotations

import asyncio

from langchain_core.messages import ToolMessage

from dispatcher.integrations.langchain_tool import WarmfleetPythonTool


def test_sync_invoke_returns_text_for_the_model(fleet):
    tool = WarmfleetPythonTool(redis_url=fleet.client_url)
    text = tool.invoke({"code": "print(sum(range(10)))"})
    assert text.splitlines()[:4] == ["status: ok", "exit_code: 0", "stdout:", "45"]


def test_the_text_result_follows_stdout(fleet):
    tool = WarmfleetPythonTool(redis_url=fleet.client_url)
    text = tool.invoke({"code": "print('printed')\n{'answer': 6 * 7}"})
    assert text.splitlines() == ["status: ok", "exit_code: 0", "stdout:", "printed", "result:", "{'answer': 42}"]


def test_tool_call_gives_a_tool_message_with_the_result_as_artifact(fleet):
    tool = WarmfleetPythonTool(redis_url=fleet.client_url)
    msg = tool.invoke({"type": "tool_call", "id": "call-1", "name": "run_python", "args": {"code": "import sys; print('x', file=sys.stderr); sys.exit(2)"}})
    assert isinstance(msg, ToolMessage) and msg.tool_call_id == "call-1"
    assert "status: error" in msg.content and "stderr:\nx" in msg.content
    assert (msg.artifact["status"], msg.artifact["exit_code"], msg.artifact["stderr"]) == ("error", 2, "x\n")


def test_async_invocations_run_concurrently(fleet):
    tool = WarmfleetPythonTool(redis_url=fleet.client_url, max_timeout=1)

    async def go():
        return await asyncio.gather(
            *(tool.ainvoke({"code": f"print({i} ** 2)"}) for i in range(6)),
            tool.ainvoke({"code": "import time; time.sleep(100)", "timeout": 100}),  # capped at max_timeout
        )

    *squares, spin = asyncio.run(go())
    assert [s.splitlines()[3] for s in squares] == [str(i**2) for i in range(6)]
    assert spin.startswith("status: timeout")


def test_schema_the_model_sees(fleet):
    schema = WarmfleetPythonTool(redis_url=fleet.client_url).tool_call_schema.model_json_schema()
    assert schema["required"] == ["code"] and set(schema["properties"]) == {"code", "timeout"}


def test_a_tool_given_a_session_keeps_state_across_calls(fleet):
    from dispatcher import Client

    with Client(fleet.client_url) as client, client.session() as s:
        tool = WarmfleetPythonTool(session=s)
        assert tool.invoke({"code": "total = 40"}).startswith("status: ok")
        assert tool.invoke({"code": "print(total + 2)"}).splitlines()[:4] == ["status: ok", "exit_code: 0", "stdout:", "42"]
        assert asyncio.run(tool.ainvoke({"code": "print(total)"})).splitlines()[3] == "40"  # a sync session, async call
    assert "has ended" in tool.invoke({"code": "print(total)"})  # never a fresh interpreter


def test_a_tool_given_an_async_session(fleet):
    from dispatcher import AsyncClient

    async def go():
        async with AsyncClient(fleet.client_url) as client, client.session() as s:
            tool = WarmfleetPythonTool(session=s)
            await tool.ainvoke({"code": "seen = [1]"})
            return await tool.ainvoke({"code": "seen.append(2); print(seen)"})

    assert asyncio.run(go()).splitlines()[3] == "[1, 2]"
