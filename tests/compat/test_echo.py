"""The built-in mock/echo provider answers through the SDK without touching any upstream."""

from __future__ import annotations

import pytest

from conftest import hello


def test_echo_chat(client, mock):
    completion = client.chat.completions.create(model="echo", messages=hello("hello gateway"))
    assert completion.object == "chat.completion"
    assert completion.id
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "hello gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert mock.requests() == []


def test_echo_mock_response(client):
    completion = client.chat.completions.create(
        model="echo", messages=hello("ignored"), extra_body={"mock_response": "fixed answer"}
    )
    assert completion.choices[0].message.content == "fixed answer"


def test_echo_stream_with_usage(client, mock):
    stream = client.chat.completions.create(
        model="echo",
        messages=hello("one two three four"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert mock.requests() == []


def test_echo_stream_without_usage(client):
    chunks = list(client.chat.completions.create(model="echo", messages=hello("a b"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b"
    assert all(c.usage is None for c in chunks)


def test_echo_embeddings(client):
    resp = client.embeddings.create(model="echo", input=["x", "y z"], dimensions=4)
    assert len(resp.data) == 2
    for item in resp.data:
        assert len(item.embedding) == 4
        assert all(isinstance(x, float) for x in item.embedding)


def test_echo_embeddings_explicit_base64(client):
    resp = client.embeddings.create(model="echo", input="x", dimensions=4, encoding_format="base64")
    # The SDK leaves the payload alone when the caller chose the format: OpenAI sends a string.
    assert isinstance(resp.data[0].embedding, str)
