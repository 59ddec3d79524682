"""OpenAI parameters that translated providers cannot take as they are, served through the
OpenAI SDK: ``reasoning_effort`` (Anthropic ``thinking``, Gemini ``thinkingConfig``,
Bedrock Claude ``reasoning_config``), ``response_format: json_object`` on Anthropic and
Bedrock (a forced tool whose input is the answer), ``parallel_tool_calls: false`` where
the provider has no switch for it (the first call is kept, and a header says so), and
``n > 1`` by fan-out on models that opt in (``fan_out_n``).

The mock upstream refuses what the real APIs refuse: unknown top-level fields and a
thinking budget below 1024 or not below ``max_tokens`` on Anthropic.
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import UPSTREAM_IDS, hello

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def upstream(mock) -> list[dict]:
    """The recorded requests other than token exchanges."""
    return [r for r in mock.requests() if r["path"] != "/token"]


def only_body(mock) -> dict:
    seen = upstream(mock)
    assert len(seen) == 1, seen
    return seen[0]["body"]


# --- reasoning_effort --------------------------------------------------------------------


@pytest.mark.parametrize("effort,budget", [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 24576)])
def test_reasoning_effort_becomes_anthropic_thinking(client, mock, effort, budget):
    completion = client.chat.completions.create(model="claude", messages=hello("think"), reasoning_effort=effort)
    assert completion.choices[0].message.content == "echo: think"
    body = only_body(mock)
    assert "reasoning_effort" not in body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == budget + 4096


def test_reasoning_effort_raises_a_small_max_tokens_above_the_budget(client, mock):
    client.chat.completions.create(model="claude", messages=hello(), reasoning_effort="low", max_tokens=100)
    body = only_body(mock)
    assert body["thinking"]["budget_tokens"] == 2048
    assert body["max_tokens"] == 2148


def test_reasoning_effort_none_sends_no_thinking(client, mock):
    client.chat.completions.create(model="claude", messages=hello(), reasoning_effort="none")
    body = only_body(mock)
    assert "thinking" not in body and "reasoning_effort" not in body


def test_a_model_entry_overrides_a_budget(client, mock):
    client.chat.completions.create(model="claude-tuned", messages=hello(), reasoning_effort="low")
    assert only_body(mock)["thinking"] == {"type": "enabled", "budget_tokens": 3000}


def test_anthropic_thinking_passes_through_and_gets_room(client, mock):
    client.chat.completions.create(
        model="claude", messages=hello(), max_tokens=500, reasoning_effort="high",
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 1500}},
    )
    body = only_body(mock)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1500}, "the client's own thinking wins"
    assert body["max_tokens"] == 2000


def test_reasoning_effort_streams_on_anthropic(client, mock):
    chunks = list(client.chat.completions.create(
        model="claude", messages=hello("one two"), reasoning_effort="medium", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: one two"
    assert only_body(mock)["thinking"]["budget_tokens"] == 8192


def test_an_unknown_level_is_bad_request(client, mock):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=hello(), reasoning_effort="extreme")
    assert info.value.param == "reasoning_effort"
    assert upstream(mock) == []


def test_reasoning_effort_on_gemini_2_5_is_a_thinking_budget(client, mock):
    completion = client.chat.completions.create(model="vertex", messages=hello("hi"), reasoning_effort="low")
    assert completion.choices[0].message.content == "echo: hi"
    config = only_body(mock)["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 2048}


def test_reasoning_effort_on_gemini_3_is_a_thinking_level(client, mock):
    client.chat.completions.create(model="gemini-3", messages=hello(), reasoning_effort="high")
    assert only_body(mock)["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "high"}


def test_reasoning_effort_on_bedrock_claude_is_reasoning_config(client, mock):
    completion = client.chat.completions.create(
        model="bedrock-claude", messages=hello("hi"), reasoning_effort="medium", max_tokens=300)
    assert completion.choices[0].message.content == "echo: hi"
    body = only_body(mock)
    assert body["additionalModelRequestFields"]["reasoning_config"] == {"type": "enabled", "budget_tokens": 8192}
    assert body["inferenceConfig"]["maxTokens"] == 8492
    assert "reasoning_effort" not in body


# --- response_format json_object ---------------------------------------------------------


@pytest.mark.parametrize("model", ["claude", "bedrock-claude"])
def test_json_object_is_served_by_a_forced_tool(client, mock, model):
    completion = client.chat.completions.create(
        model=model, messages=hello("give json"), response_format={"type": "json_object"})
    choice = completion.choices[0]
    assert json.loads(choice.message.content) == {}
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    body = only_body(mock)
    if model == "claude":
        assert body["tool_choice"] == {"type": "tool", "name": "json_object_answer"}
        assert body["tools"][0]["input_schema"] == {"type": "object"}
    else:
        assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "json_object_answer"}}


@pytest.mark.parametrize("model", ["claude", "bedrock-claude"])
def test_json_object_streams_as_content(client, mock, model):
    chunks = list(client.chat.completions.create(
        model=model, messages=hello("give json"), response_format={"type": "json_object"}, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {}
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_json_object_with_tools_is_bad_request_on_anthropic(client, mock):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="claude", messages=hello(), tools=[WEATHER_TOOL], response_format={"type": "json_object"})
    assert info.value.param == "response_format"
    assert upstream(mock) == []


# --- parallel_tool_calls: false where there is no switch ---------------------------------


@pytest.mark.parametrize("model", ["gemini", "nova", "command"])
def test_parallel_tool_calls_false_is_honoured(client, mock, model):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=hello("please call tools"), tools=[WEATHER_TOOL, TIME_TOOL],
        parallel_tool_calls=False)
    assert raw.headers.get("x-liter-llm-parallel-tool-calls") == "first-call-only"
    completion = raw.parse()
    calls = completion.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather"]
    assert "parallel_tool_calls" not in only_body(mock)


def test_gemini_keeps_every_call_without_the_flag(client, mock):
    raw = client.chat.completions.with_raw_response.create(
        model="gemini", messages=hello("please call tools"), tools=[WEATHER_TOOL, TIME_TOOL])
    assert raw.headers.get("x-liter-llm-parallel-tool-calls") is None
    calls = raw.parse().choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]


def test_gemini_stream_keeps_the_first_call(client, mock):
    raw = client.chat.completions.with_raw_response.create(
        model="gemini", messages=hello("please call tools"), tools=[WEATHER_TOOL, TIME_TOOL],
        parallel_tool_calls=False, stream=True)
    assert raw.headers.get("x-liter-llm-parallel-tool-calls") == "first-call-only"
    names = [tc.function.name for c in raw.parse() if c.choices
             for tc in (c.choices[0].delta.tool_calls or []) if tc.function and tc.function.name]
    assert names == ["get_weather"]


# --- n > 1 by fan-out --------------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude-tuned", "bedrock-claude", "command-fanout"])
def test_n_fans_out_on_models_that_opt_in(client, mock, model):
    completion = client.chat.completions.create(model=model, messages=hello("one two"), n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert {c.message.content for c in completion.choices} == {"echo: one two"}
    seen = upstream(mock)
    assert len(seen) == 3
    assert all("n" not in r["body"] for r in seen)
    single = client.chat.completions.create(model=model, messages=hello("one two"))
    assert completion.usage.prompt_tokens == 3 * single.usage.prompt_tokens
    assert completion.usage.completion_tokens == 3 * single.usage.completion_tokens
    assert completion.usage.total_tokens == 3 * single.usage.total_tokens


def test_n_is_refused_without_the_opt_in_naming_it(client, mock):
    for model in ["claude", "nova", "command"]:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=model, messages=hello(), n=2)
        assert info.value.param == "n"
        assert "fan_out_n" in info.value.message
    assert upstream(mock) == []


def test_a_fanned_out_stream_is_refused(client, mock):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude-tuned", messages=hello(), n=2, stream=True)
    assert info.value.param == "n"
    assert upstream(mock) == []
