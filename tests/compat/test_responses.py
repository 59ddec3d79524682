"""The official ``openai`` SDK against the gateway's Responses front door
(/v1/responses) and legacy completions (/v1/completions).

Responses go through chat for every deployment (the gateway keeps the conversation), so
each Responses test runs on a model per upstream protocol (conftest.PROTOCOL_MODELS:
OpenAI, Azure, Anthropic, Gemini, Vertex AI, Bedrock, Cohere). Completions go to an
OpenAI-format deployment as they came (the mock's /v1/completions) and through chat for
the others. The mocks answer "echo: <last user text>", count words as tokens, and call
the first tool when the last user text contains "call tool" (Cohere's with the
arguments ``{"city": "Paris"}``, the others with ``{}``).
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import PROTOCOL_MODELS, PROTOCOL_PATHS, UPSTREAM_IDS, VIRTUAL_KEY, make_client

MODELS = PROTOCOL_MODELS
# The arguments each mock gives its tool call.
TOOL_ARGUMENTS = {"command": {"city": "Paris"}}
# What each mock answers after a tool result: the OpenAI-format mocks echo the result;
# the Anthropic, Gemini and Bedrock mocks echo the last user turn's text, and a turn of
# tool results has none; the Cohere mock, whose tool results are a turn of their own,
# answers in text after one, echoing the last user turn ("please call tool").
AFTER_RESULT = {
    "gpt-4o": "echo: sunny",
    "azure-gpt": "echo: sunny",
    "claude": "echo: ",
    "gemini": "echo: ",
    "vertex": "echo: ",
    "nova": "echo: ",
    "command": "echo: please call tool",
}

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.parametrize("model", MODELS)
def test_responses_create(client, mock, model):
    r = client.responses.create(model=model, input="hello gateway", instructions="be brief",
                                max_output_tokens=50, metadata={"run": "compat"})
    assert r.id.startswith("resp_")
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output_text == "echo: hello gateway"
    assert r.output[0].type == "message"
    assert r.output[0].content[0].type == "output_text"
    assert r.usage.output_tokens == 3
    assert r.usage.input_tokens > 0
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.metadata == {"run": "compat"}
    [req] = mock.model_requests(model)
    # The model id is in the body, or in the path (Gemini, Vertex, Bedrock).
    named = req["body"].get("model") or req["path"].replace("%3A", ":")
    assert UPSTREAM_IDS[model] in named
    # The instructions went up as the upstream's system prompt.
    assert "be brief" in json.dumps(req["body"])


@pytest.mark.parametrize("model", MODELS)
def test_responses_stream_events(client, mock, model):
    stream = client.responses.create(model=model, input="one two three", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: one two three"
    done = events[-1].response
    assert done.output_text == "echo: one two three"
    assert done.usage.output_tokens == 4


@pytest.mark.parametrize("model", MODELS)
def test_responses_stream_helper(client, mock, model):
    with client.responses.stream(model=model, input="stream helper") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: stream helper"
    assert final.output_text == "echo: stream helper"
    assert final.status == "completed"


@pytest.mark.parametrize("model", MODELS)
def test_responses_tools_round_trip(client, mock, model):
    first = client.responses.create(model=model, input="please call tool", tools=[WEATHER])
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == TOOL_ARGUMENTS.get(model, {})
    second = client.responses.create(
        model=model, tools=[WEATHER], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )
    assert second.output_text == AFTER_RESULT[model]
    sent = mock.model_requests(model)[1]["body"]
    # The call and its result went up in the upstream's own format.
    assert "sunny" in json.dumps(sent)
    if model in ("gpt-4o", "azure-gpt"):
        assert sent["messages"][1]["tool_calls"][0]["id"] == calls[0].call_id
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny"}
    elif model in ("claude", "nova", "command"):
        assert calls[0].call_id in json.dumps(sent)

    # Streamed, the call comes as function_call items and argument events.
    events = list(client.responses.create(model=model, input="please call tool", tools=[WEATHER], stream=True))
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.done" in kinds
    done = events[-1].response
    assert done.status == "completed"
    [streamed] = [o for o in done.output if o.type == "function_call"]
    assert streamed.name == "get_weather"
    assert json.loads(streamed.arguments) == TOOL_ARGUMENTS.get(model, {})


def format_sent(model: str, body: dict):
    """The structured-output request in the upstream's own format, with the schema as a
    value (Bedrock sends it as a JSON string)."""
    if model in ("gpt-4o", "azure-gpt", "command"):
        return body["response_format"]
    if model == "claude":
        return body["output_config"]["format"]
    if model in ("gemini", "vertex"):
        config = body["generationConfig"]
        return {k: config[k] for k in ("responseMimeType", "responseJsonSchema")}
    text_format = json.loads(json.dumps(body["outputConfig"]["textFormat"]))
    spec = text_format["structure"]["jsonSchema"]
    spec["schema"] = json.loads(spec["schema"])
    return text_format


SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
          "additionalProperties": False}
FORMAT_SENT = {
    "gpt-4o": {"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True}},
    "azure-gpt": {"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True}},
    "claude": {"type": "json_schema", "schema": SCHEMA},
    "gemini": {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA},
    "vertex": {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA},
    "nova": {"type": "json_schema", "structure": {"jsonSchema": {"schema": SCHEMA, "name": "thing"}}},
    "command": {"type": "json_object", "json_schema": SCHEMA},
}


@pytest.mark.parametrize("model", MODELS)
def test_responses_structured_output(client, mock, model):
    r = client.responses.create(
        model=model, input="give json",
        text={"format": {"type": "json_schema", "name": "thing", "schema": SCHEMA, "strict": True}},
    )
    assert r.text.format.type == "json_schema"
    # Each mock answers a value fitting the schema it was sent.
    assert json.loads(r.output_text) == {"a": "mock"}
    [req] = mock.model_requests(model)
    assert format_sent(model, req["body"]) == FORMAT_SENT[model]


@pytest.mark.parametrize("model", MODELS)
def test_responses_previous_response_id_and_retrieve(gateway, client, mock, model):
    first = client.responses.create(model=model, input="my name is Ada")
    second = client.responses.create(model=model, input="what is my name",
                                     previous_response_id=first.id)
    assert second.output_text == "echo: what is my name"
    assert second.previous_response_id == first.id
    sent = json.dumps(mock.model_requests(model)[1]["body"])
    assert "my name is Ada" in sent and "echo: my name is Ada" in sent
    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == "echo: my name is Ada"
    items = client.responses.input_items.list(second.id, order="asc")
    texts = [c.text for i in items.data if i.type == "message" for c in i.content]
    assert texts == ["my name is Ada", "echo: my name is Ada", "what is my name"]
    # Another key sees nothing of it.
    with make_client(gateway, VIRTUAL_KEY) as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(first.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_responses_unknown_previous_id_is_not_found(client, mock):
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="gpt-4o", input="x", previous_response_id="resp_nope")
    assert e.value.code == "previous_response_not_found"
    assert mock.requests() == []


# Completions on every upstream (and the built-in echo model): OpenAI-format deployments
# get the request as it came on their /completions; the others a chat request.
COMPLETIONS_PATHS = {
    "gpt-4o": "/v1/completions",
    "azure-gpt": "/openai/deployments/gpt4o-prod/completions",
}


def completion_requests(mock, model: str) -> list[dict]:
    if model == "echo":
        return []
    path = COMPLETIONS_PATHS.get(model, PROTOCOL_PATHS[model])
    return [r for r in mock.requests() if r["path"].startswith(path)]


@pytest.mark.parametrize("model", MODELS + ["echo"])
def test_completions_create(client, mock, model):
    c = client.completions.create(model=model, prompt="hello there", max_tokens=20)
    assert c.object == "text_completion"
    assert "hello there" in c.choices[0].text
    assert c.usage.completion_tokens > 0
    assert c.choices[0].finish_reason == "stop"
    if model == "echo":
        assert mock.requests() == []
        return
    [req] = completion_requests(mock, model)
    if model in COMPLETIONS_PATHS:
        assert req["body"]["prompt"] == "hello there" and req["body"]["max_tokens"] == 20
        if model == "gpt-4o":
            assert req["body"] == {"model": UPSTREAM_IDS[model], "prompt": "hello there", "max_tokens": 20}
    else:
        # The prompt went up as a user turn of the upstream's chat.
        assert "hello there" in json.dumps(req["body"])
        assert "prompt" not in req["body"]


@pytest.mark.parametrize("model", MODELS + ["echo"])
def test_completions_stream(client, mock, model):
    chunks = list(client.completions.create(model=model, prompt="one two", stream=True))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert "one two" in text
    assert all(c.object == "text_completion" for c in chunks)
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert len(completion_requests(mock, model)) == (0 if model == "echo" else 1)
