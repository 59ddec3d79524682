"""The official ``openai`` SDK against the gateway's Responses front door
(/v1/responses) and legacy completions (/v1/completions).

Responses go through chat for every deployment (the gateway keeps the conversation), so
each test runs on "gpt-4o" (the mock's OpenAI API) and "claude" (the mock's Anthropic
API). Completions go to an OpenAI-format deployment as they came (the mock's
/v1/completions) and through chat for the others. The mocks answer
"echo: <last user text>" (the OpenAI mock echoes a tool result after one), count words
as tokens, and call the first tool when the last user text contains "call tool".
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import UPSTREAM_IDS, VIRTUAL_KEY, make_client

MODELS = ["gpt-4o", "claude"]

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def upstream_path(model: str) -> str:
    return "/v1/messages" if model == "claude" else "/v1/chat/completions"


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
    req = mock.only_request()
    assert req["path"] == upstream_path(model)
    assert req["body"]["model"] == UPSTREAM_IDS[model]
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
    if model == "claude":
        # The Anthropic mock does not call tools; the tool still reached it.
        assert "get_weather" in json.dumps(mock.requests()[0]["body"]["tools"])
        return
    assert calls and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {}
    second = client.responses.create(
        model=model, tools=[WEATHER], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )
    assert second.output_text == "echo: sunny"
    sent = mock.requests()[1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == calls[0].call_id
    assert sent[2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny"}


@pytest.mark.parametrize("model", MODELS)
def test_responses_structured_output(client, mock, model):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    r = client.responses.create(
        model=model, input="give json",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}},
    )
    assert r.text.format.type == "json_schema"
    body = mock.only_request()["body"]
    if model == "gpt-4o":
        assert body["response_format"] == {"type": "json_schema", "json_schema": {
            "name": "thing", "schema": schema, "strict": True}}
    else:
        # The Anthropic adapter asks for the schema its own way; the request names it.
        assert "thing" in json.dumps(body) or "properties" in json.dumps(body)


@pytest.mark.parametrize("model", MODELS)
def test_responses_previous_response_id_and_retrieve(gateway, client, mock, model):
    first = client.responses.create(model=model, input="my name is Ada")
    second = client.responses.create(model=model, input="what is my name",
                                     previous_response_id=first.id)
    assert second.output_text == "echo: what is my name"
    assert second.previous_response_id == first.id
    sent = json.dumps(mock.requests()[1]["body"])
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


@pytest.mark.parametrize("model", ["gpt-4o", "claude", "echo"])
def test_completions_create(client, mock, model):
    c = client.completions.create(model=model, prompt="hello there", max_tokens=20)
    assert c.object == "text_completion"
    assert "hello there" in c.choices[0].text
    assert c.usage.completion_tokens > 0
    if model == "gpt-4o":
        req = mock.only_request()
        assert req["path"] == "/v1/completions"
        assert req["body"] == {"model": UPSTREAM_IDS[model], "prompt": "hello there", "max_tokens": 20}


@pytest.mark.parametrize("model", ["gpt-4o", "claude", "echo"])
def test_completions_stream(client, mock, model):
    chunks = list(client.completions.create(model=model, prompt="one two", stream=True))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert "one two" in text
    assert all(c.object == "text_completion" for c in chunks)
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
