"""Anthropic's official SDK against the gateway's Messages front door (/v1/messages).

Each test runs on a model per upstream protocol (conftest.PROTOCOL_MODELS): "claude" on
the mock's Anthropic API (the gateway forwards the client's request as it came, model
rewritten) and, translated both ways, "gpt-4o" (OpenAI), "azure-gpt" (Azure OpenAI),
"gemini" (Gemini API), "vertex" (Vertex AI), "nova" (Bedrock Converse) and "command"
(Cohere). The mocks answer "echo: <last user text>", count words as tokens, and call the
first tool when the last user text contains "call tool" (Cohere's with the input
``{"city": "Paris"}`` and a tool plan, the others with ``{}``).
"""

from __future__ import annotations

import json
from typing import Iterator

import anthropic
import pytest

from conftest import MASTER_KEY, PROTOCOL_MODELS, UPSTREAM_IDS, UPSTREAM_KEY

RPM_KEY = "vk-compat-messages-rpm-0001"
MODELS = PROTOCOL_MODELS
# The input each mock gives its tool call.
TOOL_INPUT = {"command": {"city": "Paris"}}
# What each mock answers after a tool result: the OpenAI-format mocks echo the result;
# the Gemini and Bedrock mocks echo the last user turn's text, and a turn of tool results
# has none; the Cohere mock, whose tool results are a turn of their own, answers in text
# after one, echoing the last user turn ("please call tool"); the Anthropic mock echoes the
# tool_result block's text.
AFTER_RESULT = {
    "gpt-4o": ("end_turn", "echo: sunny"),
    "azure-gpt": ("end_turn", "echo: sunny"),
    "claude": ("end_turn", None),
    "gemini": ("end_turn", "echo: "),
    "vertex": ("end_turn", "echo: "),
    "nova": ("end_turn", "echo: "),
    "command": ("end_turn", "echo: please call tool"),
}

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def make(gateway, **kwargs) -> anthropic.Anthropic:
    kwargs.setdefault("api_key", MASTER_KEY)
    return anthropic.Anthropic(base_url=gateway.url, max_retries=0, timeout=20.0, **kwargs)


@pytest.fixture
def claude(gateway, mock) -> Iterator[anthropic.Anthropic]:
    with make(gateway) as c:
        yield c


def system_sent(model: str, body: dict):
    """Where the upstream's own format put the system prompt."""
    if model in ("gpt-4o", "azure-gpt", "command"):
        return body["messages"][0]
    if model in ("gemini", "vertex"):
        return body["systemInstruction"]
    return body["system"]  # Anthropic's and Bedrock's


SYSTEM_SENT = {
    "claude": "be brief",
    "gpt-4o": {"role": "system", "content": "be brief"},
    "azure-gpt": {"role": "system", "content": "be brief"},
    "command": {"role": "system", "content": "be brief"},
    "gemini": {"parts": [{"text": "be brief"}]},
    "vertex": {"parts": [{"text": "be brief"}]},
    "nova": [{"text": "be brief"}],
}


def model_sent(req: dict) -> str:
    """The upstream model id a request named: in the body, or in the path (Gemini,
    Vertex, Bedrock)."""
    return req["body"].get("model") or req["path"]


@pytest.mark.parametrize("model", MODELS)
def test_messages_create(claude, mock, model):
    msg = claude.messages.create(
        model=model,
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello gateway"}],
        extra_headers={"anthropic-version": "2023-06-01", "anthropic-beta": "test-beta-1"},
    )
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "echo: hello gateway"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 3
    assert msg.usage.input_tokens > 0
    [req] = mock.model_requests(model)
    assert UPSTREAM_IDS[model] in model_sent(req).replace("%3A", ":")
    assert system_sent(model, req["body"]) == SYSTEM_SENT[model]
    if model == "claude":
        # As the client sent it, the SDK's anthropic-version passed on.
        assert req["headers"]["x-api-key"] == UPSTREAM_KEY
        assert req["headers"]["anthropic-version"] == "2023-06-01"
        assert req["headers"]["anthropic-beta"] == "test-beta-1"
    else:
        # The Anthropic headers are for Anthropic-format upstreams only.
        assert "anthropic-beta" not in req["headers"]


@pytest.mark.parametrize("model", MODELS)
def test_messages_stream(claude, model):
    with claude.messages.stream(
        model=model,
        max_tokens=100,
        messages=[{"role": "user", "content": "one two three"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: one two three"
    assert final.content[0].text == "echo: one two three"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    assert final.usage.input_tokens == 3


@pytest.mark.parametrize("model", MODELS)
def test_tools_round_trip(claude, mock, model):
    ask = {"role": "user", "content": "please call tool"}
    first = claude.messages.create(model=model, max_tokens=100, tools=[WEATHER], messages=[ask])
    assert first.stop_reason == "tool_use"
    call = [b for b in first.content if b.type == "tool_use"][0]
    assert call.name == "get_weather"
    assert call.input == TOOL_INPUT.get(model, {})

    second = claude.messages.create(
        model=model,
        max_tokens=100,
        tools=[WEATHER],
        messages=[
            ask,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ],
    )
    stop, text = AFTER_RESULT[model]
    assert second.stop_reason == stop
    if text is not None:
        assert [b.text for b in second.content if b.type == "text"] == [text]
    sent = json.dumps(mock.model_requests(model)[-1]["body"])
    # The result went upstream in the upstream's own format, with the call's id where
    # that format keeps one.
    assert "sunny" in sent
    if model in ("gpt-4o", "azure-gpt", "claude", "nova", "command"):
        assert call.id in sent
    if model == "claude":
        assert mock.model_requests(model)[-1]["body"]["messages"][2]["content"][0]["tool_use_id"] == call.id

    # Streamed, the SDK assembles the call from its input JSON deltas.
    with claude.messages.stream(model=model, max_tokens=100, tools=[WEATHER], messages=[ask]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    streamed = [b for b in final.content if b.type == "tool_use"][0]
    assert streamed.name == "get_weather"
    assert streamed.input == TOOL_INPUT.get(model, {})


PNG = "iVBORw0KGgo="
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


def image_sent(model: str, body: dict):
    """The image part of the first user turn, in the upstream's own format."""
    if model in ("gemini", "vertex"):
        return body["contents"][0]["parts"][1]
    return body["messages"][0]["content"][1]


IMAGE_SENT = {
    "gpt-4o": {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    "azure-gpt": {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    "command": {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    "claude": IMAGE,
    "gemini": {"inlineData": {"mimeType": "image/png", "data": PNG}},
    "vertex": {"inlineData": {"mimeType": "image/png", "data": PNG}},
    "nova": {"image": {"format": "png", "source": {"bytes": PNG}}},
}


@pytest.mark.parametrize("model", MODELS)
def test_image_reaches_every_upstream(claude, mock, model):
    msg = claude.messages.create(
        model=model,
        max_tokens=100,
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is this"}, IMAGE]}],
    )
    assert msg.content[0].text == "echo: what is this"
    [req] = mock.model_requests(model)
    assert image_sent(model, req["body"]) == IMAGE_SENT[model]


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(claude, mock, model):
    count = claude.messages.count_tokens(
        model=model, system="be brief", messages=[{"role": "user", "content": "hello world"}])
    # The gateway's estimate: 3 primer tokens, 4 a message, and the words' tokens (the
    # system prompt is a message of its own); no upstream is asked.
    assert count.input_tokens == 15
    assert mock.requests() == []


def test_auth_token_is_accepted(gateway):
    with anthropic.Anthropic(base_url=gateway.url, auth_token=MASTER_KEY, max_retries=0) as c:
        msg = c.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "echo: hi"


def test_typed_exceptions(gateway, mock):
    hi = [{"role": "user", "content": "hi"}]
    with make(gateway, api_key="sk-wrong") as c:
        with pytest.raises(anthropic.AuthenticationError) as e:
            c.messages.create(model="claude", max_tokens=10, messages=hi)
        assert e.value.body["type"] == "error"
        assert e.value.body["error"]["type"] == "authentication_error"
    with make(gateway) as c:
        with pytest.raises(anthropic.NotFoundError):
            c.messages.create(model="no-such-model", max_tokens=10, messages=hi)
        with pytest.raises(anthropic.NotFoundError):
            c.messages.count_tokens(model="no-such-model", messages=hi)
        with pytest.raises(anthropic.BadRequestError) as e:
            # System turns are taken (Claude Code sends them); a role Anthropic has not is not.
            c.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "robot", "content": "x"}])
        assert e.value.body["error"]["type"] == "invalid_request_error"
        # The upstream's own 429 and 500, through either protocol.
        for model in ["claude", "gpt-4o"]:
            mock.push_status(429, retry_after_secs=1)
            with pytest.raises(anthropic.RateLimitError):
                c.messages.create(model=model, max_tokens=10, messages=hi)
            mock.push_status(500)
            with pytest.raises(anthropic.InternalServerError):
                c.messages.create(model=model, max_tokens=10, messages=hi)
    with make(gateway, api_key=RPM_KEY) as c:
        c.messages.create(model="gpt-4o", max_tokens=10, messages=hi)
        with pytest.raises(anthropic.RateLimitError) as e:
            c.messages.create(model="gpt-4o", max_tokens=10, messages=hi)
        assert e.value.body["error"]["type"] == "rate_limit_error"
    # A 402 is a billing_error (the gateway's own budget refusal is tested in
    # crates/liter-llm-proxy/tests/gateway/messages.rs; a budget here would meter the
    # whole session's gateway).
    with make(gateway) as c:
        for model in ["claude", "gpt-4o"]:
            mock.push_status(402)
            with pytest.raises(anthropic.PaymentRequiredError) as e:
                c.messages.create(model=model, max_tokens=10, messages=hi)
            assert e.value.body["error"]["type"] == "billing_error"


ANTHROPIC_ONLY = ("thinking", "output_config", "context_management")


@pytest.mark.parametrize("model", ["gpt-4o", "azure-gpt"])
def test_thinking_reaches_an_openai_format_upstream_as_reasoning_effort(claude, mock, model):
    # The mock's OpenAI API refuses Anthropic's controls as OpenAI's own does: only
    # their translation gets through.
    raw = claude.messages.with_raw_response.create(
        model=model,
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "think first"}],
    )
    assert raw.parse().content[0].text == "echo: think first"
    assert "x-liter-llm-dropped-params" not in raw.headers
    [req] = mock.model_requests(model)
    assert req["body"]["reasoning_effort"] == "low"
    assert not set(ANTHROPIC_ONLY) & set(req["body"]), req["body"]

    # Claude Code's controls, streamed: adaptive thinking with an effort, and context
    # editing, which is left out and named.
    mock.reset()
    with claude.messages.stream(
        model=model,
        max_tokens=100,
        thinking={"type": "adaptive"},
        output_config={"effort": "max"},
        extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}},
        messages=[{"role": "user", "content": "one two"}],
    ) as stream:
        assert "".join(stream.text_stream) == "echo: one two"
        assert stream.response.headers["x-liter-llm-dropped-params"] == "context_management"
    [req] = mock.model_requests(model)
    assert req["body"]["reasoning_effort"] == "high"
    assert not set(ANTHROPIC_ONLY) & set(req["body"]), req["body"]


def test_a_structured_output_reaches_an_openai_upstream_as_a_json_schema(claude, mock):
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    msg = claude.messages.create(
        model="gpt-4o",
        max_tokens=100,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=[{"role": "user", "content": "where?"}],
    )
    assert isinstance(json.loads(msg.content[0].text)["city"], str)
    [req] = mock.model_requests("gpt-4o")
    assert req["body"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert "output_config" not in req["body"]


def test_a_bad_thinking_is_a_bad_request_naming_it(claude, mock):
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(
            model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
            thinking={"type": "enabled", "budget_tokens": "lots"},
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "thinking.budget_tokens" in e.value.body["error"]["message"]
    assert mock.requests() == []
