"""LangChain (langchain-openai) and openai-agents flows on the translated providers:
Anthropic, Gemini, Bedrock and Cohere models behind the gateway, the mock upstream
answering in each provider's own format. Each flow is run by the client library itself:
``invoke``, ``stream``, ``bind_tools``, ``with_structured_output`` (function calling, JSON
schema and JSON mode), and an openai-agents ``Runner`` with a tool and a typed output.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from conftest import MASTER_KEY

langchain_openai = pytest.importorskip("langchain_openai")
agents = pytest.importorskip("agents")

MODELS = ["claude", "gemini", "nova", "command"]


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    degrees: int


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


def chat(gateway, model: str):
    return langchain_openai.ChatOpenAI(
        model=model, base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20,
    )


@pytest.mark.parametrize("model", MODELS)
def test_invoke(gateway, mock, model):
    answer = chat(gateway, model).invoke("hello langchain")
    assert answer.content == "echo: hello langchain"
    assert answer.usage_metadata["output_tokens"] == 3


@pytest.mark.parametrize("model", MODELS)
def test_stream(gateway, mock, model):
    pieces = list(chat(gateway, model).stream("one two three"))
    assert "".join(p.content for p in pieces) == "echo: one two three"


@pytest.mark.parametrize("model", MODELS)
def test_bind_tools(gateway, mock, model):
    answer = chat(gateway, model).bind_tools([get_weather]).invoke("please call tool for Paris")
    assert [c["name"] for c in answer.tool_calls] == ["get_weather"]


@pytest.mark.parametrize("model", MODELS)
def test_structured_output_by_function_calling(gateway, mock, model):
    out = chat(gateway, model).with_structured_output(Weather, method="function_calling").invoke("weather?")
    assert out == Weather(city="mock", degrees=1)
    sent = [r for r in mock.requests() if r["path"] != "/token"][-1]["body"]
    assert "parallel_tool_calls" not in sent


@pytest.mark.parametrize("model", MODELS)
def test_structured_output_by_json_schema(gateway, mock, model):
    out = chat(gateway, model).with_structured_output(Weather, method="json_schema").invoke("weather?")
    assert out == Weather(city="mock", degrees=1)


@pytest.mark.parametrize("model", MODELS)
def test_structured_output_by_json_mode(gateway, mock, model):
    out = chat(gateway, model).with_structured_output(method="json_mode").invoke("answer in JSON")
    assert isinstance(out, dict)


@pytest.mark.parametrize("model", MODELS)
def test_agents_runner_with_a_tool_and_typed_output(gateway, mock, model):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=gateway.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    llm = agents.OpenAIChatCompletionsModel(model=model, openai_client=client)
    agents.set_tracing_disabled(True)
    talker = agents.Agent(name="talker", instructions="be brief", model=llm,
                          tools=[agents.function_tool(get_weather)])
    result = agents.Runner.run_sync(talker, "please call tool for Paris")
    assert isinstance(result.final_output, str) and result.final_output
    typed = agents.Agent(name="typed", instructions="be brief", model=llm, output_type=Weather)
    assert agents.Runner.run_sync(typed, "weather?").final_output == Weather(city="mock", degrees=1)
