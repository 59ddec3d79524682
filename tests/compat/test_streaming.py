"""Streaming chat completions: the SDK iterates the gateway's SSE relay."""

from __future__ import annotations

from conftest import UPSTREAM_IDS, hello


def collect(stream):
    chunks = list(stream)
    text = "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices
    )
    return chunks, text


def test_stream_with_include_usage(client, mock):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=hello("one two three four"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks, text = collect(stream)

    assert text == "echo: one two three four"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "every chunk of one answer has the same id"
    assert {c.model for c in chunks} == {UPSTREAM_IDS["gpt-4o"]}, "same model field as a whole answer"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]

    # the last chunk carries the usage and no choices; no other chunk has usage
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (4, 5, 9)
    assert all(c.usage is None for c in chunks[:-1])

    sent = mock.only_request()["body"]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == UPSTREAM_IDS["gpt-4o"]


def test_stream_without_include_usage_has_no_usage(client, mock):
    stream = client.chat.completions.create(model="gpt-4o", messages=hello("a b c"), stream=True)
    chunks, text = collect(stream)
    assert text == "echo: a b c"
    assert chunks, "no chunks"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "no usage-only chunk without include_usage"
    # The gateway asks for the usage itself (its metrics count tokens) and keeps the
    # usage chunk from a client that did not ask for it.
    assert mock.only_request()["body"]["stream_options"] == {"include_usage": True}


def test_stream_as_context_manager_with_raw_response(client, mock):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=hello("x y"), stream=True
    )
    assert raw.status_code == 200
    assert raw.headers.get("content-type", "").startswith("text/event-stream")
    assert raw.headers.get("x-request-id")
    with raw.parse() as stream:
        _, text = collect(stream)
    assert text == "echo: x y"
