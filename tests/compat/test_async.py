"""The async client (a different HTTP code path in the SDK) against the same gateway."""

from __future__ import annotations

import asyncio

import openai
import pytest

from conftest import MASTER_KEY, hello


def run(gateway, body):
    async def main():
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20.0
        ) as client:
            return await body(client)

    return asyncio.run(main())


def test_async_chat_and_stream(gateway, mock):
    async def body(client):
        whole = await client.chat.completions.create(model="gpt-4o", messages=hello("async hi"))
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=hello("async one two"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        return whole, chunks

    whole, chunks = run(gateway, body)
    assert whole.choices[0].message.content == "echo: async hi"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: async one two"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_async_concurrent_requests(gateway, mock):
    async def body(client):
        return await asyncio.gather(
            *(client.chat.completions.create(model="gpt-4o", messages=hello(f"n {i}")) for i in range(8))
        )

    results = run(gateway, body)
    assert [r.choices[0].message.content for r in results] == [f"echo: n {i}" for i in range(8)]
    assert len({r.id for r in results}) == 8
    assert len(mock.requests()) == 8


def test_async_error_class(gateway, mock):
    mock.push_status(429, retry_after_secs=3)

    async def body(client):
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="gpt-4o", messages=hello())
        return info.value

    err = run(gateway, body)
    assert err.response.headers.get("retry-after") == "3"
