"""The native Bedrock provider through the OpenAI SDK: the client speaks OpenAI, the mock
upstream gets Bedrock's Converse API (POST /model/{id}/converse, SigV4-signed) and
answers streams in AWS's binary event-stream framing.

Model "nova" is ``bedrock/amazon.nova-lite-v1:0`` and "titan" is
``bedrock/amazon.titan-embed-text-v2:0``. The mock answers "echo: <last user text>",
counts words as tokens, and calls the first tool when the request has tools and the last
user text contains "call tool".
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import UPSTREAM_IDS, hello

NOVA_PATH = "/model/amazon.nova-lite-v1%3A0"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_chat_is_translated_and_signed(client, mock):
    completion = client.chat.completions.create(
        model="nova",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello nova"}],
        max_tokens=50,
        temperature=0.3,
        stop=["END"],
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "nova"
    assert completion.choices[0].message.content == "echo: hello nova"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 4
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 7

    req = mock.only_request()
    assert req["path"] == NOVA_PATH + "/converse"
    assert req["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDCOMPAT/")
    assert "/us-east-1/bedrock/aws4_request" in req["headers"]["authorization"]
    body = req["body"]
    assert body["system"] == [{"text": "be brief"}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "hello nova"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.3, "stopSequences": ["END"]}


def test_streaming_with_usage(client, mock):
    stream = client.chat.completions.create(
        model="nova", messages=hello("one two three"), stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 4
    assert mock.only_request()["path"] == NOVA_PATH + "/converse-stream"


def test_tool_calls_whole_and_streamed(client, mock):
    completion = client.chat.completions.create(
        model="nova", messages=hello("please call tool"), tools=[WEATHER_TOOL], tool_choice="auto",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {}
    sent = mock.requests()[0]["body"]
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert sent["toolConfig"]["toolChoice"] == {"auto": {}}

    stream = client.chat.completions.create(
        model="nova", messages=hello("call tool please"), tools=[WEATHER_TOOL], stream=True,
    )
    args = ""
    names = []
    for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            args += (tc.function.arguments or "") if tc.function else ""
    assert names == ["get_weather"]
    assert json.loads(args) == {}

    # The tool result goes back to Bedrock as toolUse/toolResult blocks.
    client.chat.completions.create(
        model="nova",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "please call tool"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    sent = mock.requests()[-1]["body"]
    assert sent["messages"][1]["content"][0]["toolUse"]["toolUseId"] == call.id
    assert sent["messages"][2]["content"][0]["toolResult"]["content"] == [{"text": "sunny"}]


def test_image_url_is_refused_and_base64_is_sent(client, mock):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="nova", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert info.value.param == "messages[0].content[0]"
    assert mock.requests() == []
    client.chat.completions.create(model="nova", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    sent = mock.only_request()["body"]
    assert sent["messages"][0]["content"][1] == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}


def test_errors_are_openai_shaped(client, mock):
    mock.push_status(429, retry_after_secs=3, model=UPSTREAM_IDS["nova"])
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="nova", messages=hello())
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.code == "rate_limit_exceeded"

    mock.push_status(400, body={"message": "Input is too long for requested model."}, model=UPSTREAM_IDS["nova"])
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="nova", messages=hello())
    assert info.value.code == "context_length_exceeded"

    mock.push_status(503, model=UPSTREAM_IDS["nova"])
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="nova", messages=hello())
    assert info.value.status_code == 503


def test_titan_embeddings(client, mock):
    out = client.embeddings.create(model="titan", input="hello there", dimensions=4)
    assert len(out.data) == 1
    assert len(out.data[0].embedding) == 4
    assert out.usage.prompt_tokens == 2
    req = mock.only_request()
    assert req["path"] == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert req["body"]["inputText"] == "hello there"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="titan", input=["a", "b"])
    assert info.value.param == "input"
