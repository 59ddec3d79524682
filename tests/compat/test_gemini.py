"""The Gemini API and Vertex AI providers through the OpenAI SDK: the client speaks OpenAI,
the mock upstream gets Google's generateContent format.

Model "gemini" is ``gemini/gemini-2.0-flash`` (key in ``x-goog-api-key``); model "vertex" is
``vertex_ai/gemini-2.5-pro`` with the test-only service account, whose ``token_uri`` is the
mock's ``/token``: the gateway signs a JWT, exchanges it there, and sends the token as
``Authorization: Bearer``. The mock answers "echo: <last user text>", counts words as tokens,
calls the first declared function when the last user text contains "call tool", and blocks a
prompt containing "block me".
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import UPSTREAM_IDS, UPSTREAM_KEY, hello

GEMINI_ID = UPSTREAM_IDS["gemini"]
VERTEX_ID = UPSTREAM_IDS["vertex"]
VERTEX_PATH = f"/v1/projects/compat-project/locations/us-central1/publishers/google/models/{VERTEX_ID}"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def upstream(mock) -> list[dict]:
    """The recorded requests other than token exchanges."""
    return [r for r in mock.requests() if r["path"] != "/token"]


def header(req: dict, name: str):
    return next((v for k, v in req["headers"] if k.lower() == name), None)


def test_chat_is_translated_both_ways(client, mock):
    completion = client.chat.completions.create(
        model="gemini",
        messages=[{"role": "system", "content": "be brief"}] + hello("hello gemini"),
        max_tokens=50,
        temperature=0.2,
    )
    choice = completion.choices[0]
    assert choice.message.content == "echo: hello gemini"
    assert choice.finish_reason == "stop"
    assert completion.model == "gemini"
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 3

    req = mock.only_request()
    assert req["path"] == f"/v1beta/models/{GEMINI_ID}:generateContent"
    assert req["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    assert "authorization" not in req["headers"]
    body = req["body"]
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hello gemini"}]}]
    assert body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 50}


def test_streaming_with_usage(client, mock):
    stream = client.chat.completions.create(
        model="gemini", messages=hello("one two three"), stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 4
    assert mock.only_request()["path"] == f"/v1beta/models/{GEMINI_ID}:streamGenerateContent?alt=sse"


def test_tool_calls_whole_and_streamed(client, mock):
    completion = client.chat.completions.create(
        model="gemini", messages=hello("please call tool"), tools=[WEATHER_TOOL], tool_choice="auto",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {}
    sent = mock.only_request()["body"]
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    # The result goes back as a functionResponse named after the call.
    mock.reset()
    follow = client.chat.completions.create(
        model="gemini", tools=[WEATHER_TOOL],
        messages=hello("please call tool") + [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
    )
    assert follow.choices[0].message.content == "echo: thanks"
    # The tool result and the next user text share one user turn.
    parts = mock.only_request()["body"]["contents"][2]["parts"]
    assert parts == [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
                     {"text": "thanks"}]

    mock.reset()
    stream = client.chat.completions.create(
        model="gemini", messages=hello("call tool now"), tools=[WEATHER_TOOL], stream=True,
    )
    deltas = [c.choices[0].delta.tool_calls for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert len(deltas) == 1
    assert deltas[0][0].function.name == "get_weather"
    assert deltas[0][0].id


def test_embeddings(client, mock):
    result = client.embeddings.create(model="gemini", input=["one two", "three"], dimensions=4)
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 4
    req = mock.only_request()
    assert req["path"] == f"/v1beta/models/{GEMINI_ID}:batchEmbedContents"
    assert len(req["body"]["requests"]) == 2


def test_errors_are_openai_shaped(client, mock):
    mock.push_status(429, retry_after_secs=3, model=GEMINI_ID)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gemini", messages=hello())
    assert err.value.response.headers["retry-after"] == "3"
    assert err.value.code == "rate_limit_exceeded"

    mock.push_status(503, model=GEMINI_ID)
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="gemini", messages=hello())
    assert err.value.status_code == 503
    assert err.value.code == "overloaded"

    mock.push_status(400, body={"error": {"code": 400, "status": "INVALID_ARGUMENT",
        "message": "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."}},
        model=GEMINI_ID)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemini", messages=hello())
    assert err.value.code == "context_length_exceeded"

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemini", messages=hello("block me"))
    assert err.value.code == "content_filter"


def test_vertex_exchanges_a_token_and_uses_it(client, mock):
    for _ in range(2):
        completion = client.chat.completions.create(model="vertex", messages=hello("hi vertex"))
        assert completion.choices[0].message.content == "echo: hi vertex"
    reqs = upstream(mock)
    assert [r["path"] for r in reqs] == [f"{VERTEX_PATH}:generateContent"] * 2
    bearer = header(reqs[0], "authorization")
    assert bearer.startswith("Bearer ya29.mock-token-")
    assert header(reqs[1], "authorization") == bearer
    # The session's gateway exchanges at most once for the two requests (the token may
    # predate this test).
    assert len([r for r in mock.requests() if r["path"] == "/token"]) <= 1

    stream = client.chat.completions.create(
        model="vertex", messages=hello("a b"), stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b"
    assert chunks[-1].usage.completion_tokens == 3

    result = client.embeddings.create(model="vertex", input="one two")
    assert len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens == 2
    assert upstream(mock)[-1]["path"] == f"{VERTEX_PATH}:predict"
