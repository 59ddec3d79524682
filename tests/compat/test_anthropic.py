"""The native Anthropic provider through the OpenAI SDK: the client speaks OpenAI, the mock
upstream gets Anthropic's Messages API (POST /v1/messages, x-api-key, anthropic-version).

Model "claude" is configured as ``anthropic/claude-sonnet-4-20250514``; ``anthropic/<id>``
names reach the same mock through the ``[[aliases]]`` entry. The mock answers
"echo: <last user text>", counts words as tokens, and calls the first tool when the request
has tools and the last user text contains "call tool".
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import MASTER_KEY, UPSTREAM_IDS, UPSTREAM_KEY, hello

CLAUDE_ID = UPSTREAM_IDS["claude"]

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


def anthropic_error(kind: str, message: str) -> dict:
    """An error body in Anthropic's shape (what the real API sends)."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def assert_openai_error_shape(err: openai.APIStatusError) -> dict:
    """The client sees OpenAI's error JSON, never Anthropic's."""
    body = err.response.json()
    assert set(body) == {"error"}, body
    detail = body["error"]
    assert {"message", "type", "param", "code"} <= set(detail), body
    assert err.code == detail["code"]
    assert err.type == detail["type"]
    return detail


# --- chat ---------------------------------------------------------------------------------


def test_chat_content_usage_and_finish_reason(client, mock):
    completion = client.chat.completions.create(model="claude", messages=hello("hello claude"))

    assert completion.object == "chat.completion"
    assert completion.id
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello claude"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop", "Anthropic's end_turn"
    # words as tokens: in "hello claude", out "echo: hello claude"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 5
    assert completion.model == "claude"


def test_upstream_gets_the_messages_api(client, mock):
    client.chat.completions.create(
        model="claude",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello claude"},
        ],
        temperature=0.5,
        stop="END",
        user="user-7",
    )
    req = mock.only_request()
    assert req["method"] == "POST"
    assert req["path"] == "/v1/messages"
    assert req["headers"]["x-api-key"] == UPSTREAM_KEY
    assert req["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req["headers"]
    for name, value in req["headers"].items():
        assert MASTER_KEY not in value, f"the client's key leaked upstream in {name}"
    sent = req["body"]
    assert sent["model"] == CLAUDE_ID
    assert sent["system"] == "be brief", "the system message moves to the top-level field"
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert isinstance(sent["max_tokens"], int) and sent["max_tokens"] > 0, "required by Anthropic"
    assert sent["temperature"] == 0.5
    assert sent["stop_sequences"] == ["END"]


def test_max_tokens_truncation_is_finish_reason_length(client, mock):
    completion = client.chat.completions.create(
        model="claude", messages=hello("one two three four"), max_tokens=2
    )
    assert completion.choices[0].message.content == "echo: one"
    assert completion.choices[0].finish_reason == "length", "Anthropic's max_tokens"
    assert completion.usage.completion_tokens == 2
    assert mock.only_request()["body"]["max_tokens"] == 2


def test_with_raw_response_names_the_model_and_deployment(client, mock):
    raw = client.chat.completions.with_raw_response.create(model="claude", messages=hello())
    assert raw.status_code == 200
    assert raw.headers.get("x-liter-llm-model") == "claude"
    assert raw.headers.get("x-liter-llm-deployment") == f"anthropic/{CLAUDE_ID}"
    assert raw.headers.get("x-request-id")
    assert raw.parse().choices[0].message.content == "echo: hello gateway"


# --- streaming ----------------------------------------------------------------------------


def test_stream_with_include_usage(client, mock):
    stream = client.chat.completions.create(
        model="claude",
        messages=hello("one two three"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)  # the SDK iterates to the end without raising

    assert chunks, "no chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "one id for the whole stream"
    with_choices = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text == "echo: one two three", "word deltas reassemble to the whole answer"
    assert with_choices[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in with_choices if c.choices[0].finish_reason]
    assert finish == ["stop"]

    # the usage chunk comes last, with no choices, as OpenAI sends it
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 3
    assert last.usage.completion_tokens == 4
    assert last.usage.total_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])

    req = mock.only_request()
    assert req["path"] == "/v1/messages"
    assert req["body"]["stream"] is True
    assert "stream_options" not in req["body"], "an OpenAI-only field"


def test_stream_without_include_usage_has_no_usage_chunk(client, mock):
    with client.chat.completions.create(
        model="claude", messages=hello("a b"), stream=True
    ) as stream:
        chunks = list(stream)
    assert chunks and all(c.choices for c in chunks), "no usage-only chunk"
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: a b"


def test_stream_iterated_with_the_context_manager_and_early_close(client, mock, gateway):
    # The upstream sends its first event and then holds the rest, so the stream is
    # certainly still open when the client closes it after one chunk.
    mock.push_fault({"type": "hold_stream", "after_chunks": 1}, model=CLAUDE_ID)
    with client.chat.completions.create(
        model="claude", messages=hello("w1 w2 w3 w4 w5 w6"), stream=True
    ) as stream:
        first = next(iter(stream))
        request_id = stream.response.headers["x-request-id"]
    assert first.object == "chat.completion.chunk"
    assert first.choices[0].delta.role == "assistant"
    assert stream.response.is_closed, "the context manager closed the stream early"

    # The gateway saw the client go before the end: its request line says so ...
    line = gateway.request_line(request_id)
    assert line is not None, f"no request line for {request_id}:\n{gateway.process.output()}"
    assert "stream_completed=false" in line, line
    assert 'model="claude"' in line and "status=200" in line, line
    # ... and keeps serving the same client (the held upstream stream is not waited on).
    again = client.chat.completions.create(model="claude", messages=hello("after close"))
    assert again.choices[0].message.content == "echo: after close"


# --- tools --------------------------------------------------------------------------------


def test_tool_call_is_parsed_by_the_sdk(client, mock):
    completion = client.chat.completions.create(
        model="claude",
        messages=hello("please call tool for Paris"),
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls", "Anthropic's tool_use"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str), "arguments are a JSON string, as in OpenAI"
    assert json.loads(call.function.arguments) == {}

    sent = mock.only_request()["body"]
    assert sent["tools"] == [{
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": WEATHER_TOOL["function"]["parameters"],
    }]
    assert sent["tool_choice"]["type"] == "auto"


def test_tool_result_second_turn(client, mock):
    messages = hello("please call tool for Paris")
    first = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    assistant = first.choices[0].message
    call = assistant.tool_calls[0]

    # the SDK's own message object goes back as the assistant turn, as OpenAI's docs show
    messages = messages + [
        assistant.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny and 21 C"},
    ]
    mock.reset()
    second = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    choice = second.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert choice.message.content.startswith("echo:")
    # the tool result counts as input: "please call tool for Paris" + "sunny and 21 C"
    assert second.usage.prompt_tokens == 9

    sent = mock.only_request()["body"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    tool_use = [b for b in sent["messages"][1]["content"] if b["type"] == "tool_use"]
    assert tool_use == [{"type": "tool_use", "id": call.id, "name": "get_weather", "input": {}}]
    results = [b for b in sent["messages"][2]["content"] if b["type"] == "tool_result"]
    assert len(results) == 1
    assert results[0]["tool_use_id"] == call.id
    assert "sunny and 21 C" in json.dumps(results[0]["content"])


def test_streamed_tool_call_is_assembled(client, mock):
    stream = client.chat.completions.create(
        model="claude",
        messages=hello("call tool now"),
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas, "no tool call deltas"
    assert {d.index for d in deltas} == {0}
    assert [d.function.name for d in deltas if d.function and d.function.name] == ["get_weather"]
    assert [d.id for d in deltas if d.id] and deltas[0].id
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments) == {}
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 1


def test_tool_arguments_that_are_not_json_are_bad_request(client, mock):
    messages = hello("x") + [
        {"role": "assistant", "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{not json"},
        }]},
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
    ]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    assert info.value.status_code == 400
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"
    assert mock.requests() == [], "rejected before anything is sent"


# --- provider/model names through [[aliases]] ---------------------------------------------


@pytest.mark.parametrize("model_id", [CLAUDE_ID, "claude-3-5-haiku-latest"])
def test_anthropic_name_sent_directly_via_the_alias(client, mock, model_id):
    name = f"anthropic/{model_id}"
    raw = client.chat.completions.with_raw_response.create(model=name, messages=hello("hi alias"))
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hi alias"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == 5
    assert raw.headers.get("x-liter-llm-deployment") == name

    req = mock.only_request()
    assert req["path"] == "/v1/messages"
    assert req["headers"]["x-api-key"] == UPSTREAM_KEY, "the alias's credentials"
    assert req["body"]["model"] == model_id, "the provider prefix is stripped"


def test_anthropic_name_streams_via_the_alias(client, mock):
    stream = client.chat.completions.create(
        model=f"anthropic/{CLAUDE_ID}",
        messages=hello("streamed alias"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: streamed alias"
    assert chunks[-1].usage is not None


def test_names_no_alias_covers_are_not_found(client, mock):
    for name in ["anthropic", "groq/llama3-70b-8192", "openai/gpt-4o-mini"]:
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model=name, messages=hello())
        assert info.value.code == "model_not_found", name
    assert mock.requests() == []


def test_virtual_key_may_not_use_alias_names(vclient, mock):
    with pytest.raises(openai.PermissionDeniedError) as info:
        vclient.chat.completions.create(model=f"anthropic/{CLAUDE_ID}", messages=hello())
    assert info.value.status_code == 403
    with pytest.raises(openai.PermissionDeniedError):
        vclient.chat.completions.create(model="claude", messages=hello())
    assert mock.requests() == []


# --- errors -------------------------------------------------------------------------------


def test_overloaded_529_is_internal_server_error_503(client, mock):
    mock.push_status(529, model=CLAUDE_ID)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude", messages=hello())
    err = info.value
    assert err.status_code == 503, "529 is not a status OpenAI clients know"
    detail = assert_openai_error_shape(err)
    assert detail["code"] == "overloaded"
    assert len(mock.requests()) == 1, "max_retries = 0"


def test_overloaded_before_a_stream_raises_at_create(client, mock):
    mock.push_status(529, model=CLAUDE_ID)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude", messages=hello(), stream=True)
    assert info.value.status_code == 503
    assert info.value.code == "overloaded"


def test_rate_limit_429_keeps_retry_after(client, mock):
    mock.push_status(429, retry_after_secs=9, model=CLAUDE_ID)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude", messages=hello())
    err = info.value
    assert err.status_code == 429
    assert err.response.headers.get("retry-after") == "9"
    detail = assert_openai_error_shape(err)
    assert detail["type"] == "rate_limit_error"
    assert detail["code"] == "rate_limit_exceeded"


def test_prompt_too_long_is_context_length_exceeded(client, mock):
    message = "prompt is too long: 210000 tokens > 200000 maximum"
    mock.push_status(400, body=anthropic_error("invalid_request_error", message), model=CLAUDE_ID)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=hello())
    err = info.value
    assert err.status_code == 400
    detail = assert_openai_error_shape(err)
    assert detail["code"] == "context_length_exceeded"
    assert detail["type"] == "invalid_request_error"
    assert message in err.message, "Anthropic's message is kept"


def test_other_invalid_request_is_plain_bad_request(client, mock):
    message = "messages.0.content: field required"
    mock.push_status(400, body=anthropic_error("invalid_request_error", message), model=CLAUDE_ID)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=hello())
    detail = assert_openai_error_shape(info.value)
    assert detail["code"] != "context_length_exceeded"
    assert message in info.value.message


def test_errors_through_the_alias_name_too(client, mock):
    mock.push_status(529, model=CLAUDE_ID)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=f"anthropic/{CLAUDE_ID}", messages=hello())
    assert info.value.status_code == 503
    assert info.value.code == "overloaded"


def test_n_above_one_is_bad_request_before_sending(client, mock):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=hello(), n=2)
    assert info.value.status_code == 400
    assert info.value.param == "n"
    assert mock.requests() == []


def test_embeddings_on_the_anthropic_model_are_bad_request(client, mock):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="claude", input="hello")
    assert info.value.status_code == 400
    assert_openai_error_shape(info.value)
    assert mock.requests() == [], "Anthropic has no embeddings endpoint to call"
