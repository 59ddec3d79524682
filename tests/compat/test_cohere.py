"""The native Cohere provider through the OpenAI SDK: the client speaks OpenAI, the mock
upstream gets Cohere's Chat v2 (POST /v2/chat) and Embed v2 (POST /v2/embed) with a Bearer key.

The mock answers "echo: <last user text>", counts words as tokens, and calls the first tool
(arguments {"city": "Paris"}) when the request has tools and the last user text contains
"call tool".
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import MASTER_KEY, UPSTREAM_IDS, UPSTREAM_KEY, hello

COMMAND_ID = UPSTREAM_IDS["command"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_chat_is_translated_both_ways(client, mock):
    completion = client.chat.completions.create(
        model="command",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello cohere"}],
        temperature=0.5,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
    )
    choice = completion.choices[0]
    assert choice.message.content == "echo: hello cohere"
    assert choice.finish_reason == "stop", "Cohere's COMPLETE"
    assert completion.model == "command"
    assert completion.usage.prompt_tokens == 4
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 7

    req = mock.only_request()
    assert req["path"] == "/v2/chat"
    assert req["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    for name, value in req["headers"].items():
        assert MASTER_KEY not in value, f"the client's key leaked upstream in {name}"
    sent = req["body"]
    assert sent["model"] == COMMAND_ID
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["p"] == 0.9 and "top_p" not in sent
    assert sent["max_tokens"] == 50
    assert sent["stop_sequences"] == ["END"]


def test_max_tokens_truncation_is_length(client, mock):
    completion = client.chat.completions.create(model="command", messages=hello("one two three"), max_tokens=2)
    assert completion.choices[0].message.content == "echo: one"
    assert completion.choices[0].finish_reason == "length", "Cohere's MAX_TOKENS"


def test_stream_with_include_usage(client, mock):
    stream = client.chat.completions.create(
        model="command", messages=hello("one two three"), stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    with_choices = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == "echo: one two three"
    assert [c.choices[0].finish_reason for c in with_choices if c.choices[0].finish_reason] == ["stop"]
    assert len({c.id for c in chunks}) == 1
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 4)
    sent = mock.only_request()["body"]
    assert sent["stream"] is True and "stream_options" not in sent


def test_tool_call_and_its_result(client, mock):
    completion = client.chat.completions.create(
        model="command", messages=hello("please call tool for Paris"), tools=[WEATHER_TOOL], tool_choice="required",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = mock.requests()[0]["body"]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "REQUIRED"

    follow_up = client.chat.completions.create(
        model="command",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "please call tool for Paris"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
            {"role": "user", "content": "thanks"},
        ],
    )
    assert follow_up.choices[0].message.content == "echo: thanks"
    sent = mock.requests()[1]["body"]
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}


def test_streamed_tool_call_deltas(client, mock):
    stream = client.chat.completions.create(
        model="command", messages=hello("call tool"), tools=[WEATHER_TOOL], stream=True,
    )
    name, arguments, finish = None, "", None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                assert delta.index == 0
                if delta.function.name:
                    name = delta.function.name
                arguments += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"


def test_errors_are_openai_shaped(client, mock):
    mock.push_status(429, retry_after_secs=3, model=COMMAND_ID)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="command", messages=hello())
    assert err.value.response.headers.get("retry-after") == "3"
    assert err.value.code == "rate_limit_exceeded"

    mock.push_status(400, body={"id": "x", "message": "too many tokens: size limit exceeded by 10 tokens."},
                     model=COMMAND_ID)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="command", messages=hello())
    assert err.value.code == "context_length_exceeded"

    mock.push_status(503, model=COMMAND_ID)
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="command", messages=hello())
    assert err.value.status_code == 503
    assert err.value.code == "overloaded"


def test_unsupported_parameter_is_a_400_naming_it(client, mock):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="command", messages=hello(), logprobs=True)
    assert err.value.param == "logprobs"
    assert mock.requests() == []


def test_embeddings_default_base64_and_float(client, mock):
    default = client.embeddings.create(model="cohere-embed", input=["a b", "c"])
    as_float = client.embeddings.create(model="cohere-embed", input=["a b", "c"], encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    for a, b in zip(default.data, as_float.data):
        assert len(a.embedding) == len(b.embedding) == 8
        assert all(abs(x - y) < 1e-6 for x, y in zip(a.embedding, b.embedding))
    assert default.usage.prompt_tokens == 3

    sent = mock.requests()[0]
    assert sent["path"] == "/v2/embed"
    assert sent["body"]["texts"] == ["a b", "c"]
    assert sent["body"]["input_type"] == "search_document"
    assert sent["body"]["embedding_types"] == ["float"]

    client.embeddings.create(model="cohere-embed", input="query", extra_body={"input_type": "search_query"})
    assert mock.requests()[2]["body"]["input_type"] == "search_query"
