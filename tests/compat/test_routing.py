"""Routing as the SDK sees it: fallbacks, the x-liter-llm-* headers, and /v1/models listing
the new kinds of names.

Model "flaky" (upstream id ``flaky-model``) falls back to "gpt-4o"; the session config has
``max_retries = 0``, so "flaky" gets one attempt before its fallback is tried. Faults are queued
forever (``times=None``): whatever the router might retry on "flaky" fails too, so an answer can
only come from the fallback.
"""

from __future__ import annotations

import openai
import pytest

from conftest import ALIAS_PATTERNS, UPSTREAM_IDS, hello

FLAKY_ID = UPSTREAM_IDS["flaky"]
GPT_ID = UPSTREAM_IDS["gpt-4o"]


def served_ids(mock) -> list[str]:
    """Upstream model ids of the recorded requests, in order."""
    return [r["body"]["model"] for r in mock.requests()]


def fail_forever(mock, upstream_id: str, status: int = 503) -> None:
    mock.push_fault({"type": "status", "status": status}, model=upstream_id, times=None)


def test_a_healthy_pool_answers_itself(client, mock):
    raw = client.chat.completions.with_raw_response.create(model="flaky", messages=hello("hi flaky"))
    assert raw.headers.get("x-liter-llm-model") == "flaky"
    assert raw.headers.get("x-liter-llm-deployment") == f"openai/{FLAKY_ID}"
    assert raw.parse().choices[0].message.content == "echo: hi flaky"
    assert served_ids(mock) == [FLAKY_ID]


def test_a_failing_model_falls_back(client, mock):
    fail_forever(mock, FLAKY_ID)
    raw = client.chat.completions.with_raw_response.create(model="flaky", messages=hello("fall back"))
    assert raw.status_code == 200
    assert raw.headers.get("x-liter-llm-model") == "gpt-4o", "the model that answered"
    assert raw.headers.get("x-liter-llm-deployment") == f"openai/{GPT_ID}"
    assert raw.headers.get("x-request-id")
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: fall back"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == GPT_ID, "the body is the fallback's answer"
    assert served_ids(mock) == [FLAKY_ID, GPT_ID], "one attempt on flaky, then its fallback"


def test_plain_create_succeeds_through_the_fallback(client, mock):
    # no raw response needed: to the SDK a fallback is just a successful call
    fail_forever(mock, FLAKY_ID, status=500)
    completion = client.chat.completions.create(model="flaky", messages=hello("quietly"))
    assert completion.choices[0].message.content == "echo: quietly"
    assert served_ids(mock) == [FLAKY_ID, GPT_ID]


def test_a_rate_limited_model_falls_back(client, mock):
    mock.push_fault(
        {"type": "status", "status": 429, "retry_after_secs": 1}, model=FLAKY_ID, times=None
    )
    raw = client.chat.completions.with_raw_response.create(model="flaky", messages=hello())
    assert raw.headers.get("x-liter-llm-model") == "gpt-4o"
    assert "retry-after" not in raw.headers, "the 429 was handled by the gateway"
    assert served_ids(mock) == [FLAKY_ID, GPT_ID]


def test_a_stream_falls_back_before_its_first_chunk(client, mock):
    fail_forever(mock, FLAKY_ID)
    raw = client.chat.completions.with_raw_response.create(
        model="flaky",
        messages=hello("one two three"),
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers.get("x-liter-llm-model") == "gpt-4o"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[-1].usage is not None
    assert served_ids(mock) == [FLAKY_ID, GPT_ID]


def test_a_stream_broken_before_any_data_falls_back(client, mock):
    mock.push_fault({"type": "cut_stream", "after_chunks": 0}, model=FLAKY_ID, times=None)
    stream = client.chat.completions.create(model="flaky", messages=hello("still here"), stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: still here", "the client sees nothing of the broken attempt"
    assert served_ids(mock) == [FLAKY_ID, GPT_ID]


def test_when_the_fallback_fails_too_the_last_error_is_raised(client, mock):
    fail_forever(mock, FLAKY_ID)
    fail_forever(mock, GPT_ID)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="flaky", messages=hello())
    err = info.value
    assert err.status_code == 502
    assert err.code == "upstream_error"
    assert err.response.headers.get("x-liter-llm-model") == "gpt-4o", "the model that failed last"
    assert "gpt-4o" in err.message
    assert served_ids(mock) == [FLAKY_ID, GPT_ID]


def test_client_errors_do_not_fall_back(client, mock):
    mock.push_status(400, model=FLAKY_ID)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="flaky", messages=hello())
    assert info.value.status_code == 400
    assert info.value.response.headers.get("x-liter-llm-model") == "flaky"
    assert served_ids(mock) == [FLAKY_ID], "a provider 4xx is returned as it is"


def test_every_answer_names_its_model(client, mock):
    for name, deployment in [
        ("gpt-4o", f"openai/{GPT_ID}"),
        ("claude", f"anthropic/{UPSTREAM_IDS['claude']}"),
        ("echo", "mock/echo"),
    ]:
        raw = client.chat.completions.with_raw_response.create(model=name, messages=hello())
        assert raw.headers.get("x-liter-llm-model") == name
        assert raw.headers.get("x-liter-llm-deployment") == deployment


def test_the_model_list_has_the_new_names(client, mock):
    models = {m.id: m for m in client.models.list()}
    assert "claude" in models
    assert "flaky" in models
    for pattern in ALIAS_PATTERNS:
        assert pattern in models
    assert models["anthropic/*"].owned_by == "anthropic"
    assert models["anthropic/*"].object == "model"
    assert list(models).count("flaky") == 1
    assert mock.requests() == []


def test_retrieve_the_new_names(client):
    assert client.models.retrieve("claude").id == "claude"
    assert client.models.retrieve("flaky").id == "flaky"
    name = f"anthropic/{UPSTREAM_IDS['claude']}"
    assert client.models.retrieve(name).id == name


def test_an_anthropic_pool_is_owned_by_anthropic(client):
    models = {m.id: m for m in client.models.list()}
    assert models["claude"].owned_by == "anthropic"
