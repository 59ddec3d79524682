"""Azure OpenAI through the OpenAI SDK: the request is forwarded unchanged to the deployment
URL with ``api-version`` and the key in ``api-key``; Azure's content-filter annotations and
errors reach the client intact.
"""

from __future__ import annotations

import openai
import pytest

from conftest import MASTER_KEY, UPSTREAM_IDS, UPSTREAM_KEY, hello

DEPLOYMENT = UPSTREAM_IDS["azure-gpt"]
CHAT_PATH = f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"


def test_chat_goes_to_the_deployment(client, mock):
    completion = client.chat.completions.create(model="azure-gpt", messages=hello("hello azure"))
    assert completion.choices[0].message.content == "echo: hello azure"
    req = mock.only_request()
    assert req["path"] == CHAT_PATH
    assert req["headers"]["api-key"] == UPSTREAM_KEY
    assert "authorization" not in req["headers"]
    for value in req["headers"].values():
        assert MASTER_KEY not in value


def test_stream_with_usage(client, mock):
    chunks = list(client.chat.completions.create(
        model="azure-gpt", messages=hello("one two"), stream=True, stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_filtered_answer_keeps_azures_annotations(client, mock):
    raw = client.chat.completions.with_raw_response.create(
        model="azure-gpt", messages=hello("please trigger the content filter"),
    )
    body = raw.http_response.json()
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["content_filter_results"]["violence"]["filtered"] is True
    assert body["prompt_filter_results"][0]["prompt_index"] == 0
    assert raw.parse().choices[0].finish_reason == "content_filter"


def test_content_filter_400_reaches_the_sdk(client, mock):
    mock.push_status(400, model=DEPLOYMENT, body={"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": None, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation",
                       "content_filter_result": {"hate": {"filtered": True, "severity": "high"}}}}})
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="azure-gpt", messages=hello())
    assert err.value.code == "content_filter"
    assert err.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert len(mock.requests()) == 1, "not retried"
