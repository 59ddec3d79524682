"""Non-streaming chat completions through the SDK, checked against what the upstream received."""

from __future__ import annotations

from conftest import MASTER_KEY, UPSTREAM_IDS, UPSTREAM_KEY, hello


def test_chat_completion_content_usage_and_id(client, mock):
    completion = client.chat.completions.create(model="gpt-4o", messages=hello("hello gateway"))

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello gateway"
    assert choice.finish_reason == "stop"
    # the mock counts words: prompt "hello gateway", completion "echo: hello gateway"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 5
    # The body is relayed as the provider sent it: `model` is the provider's id (as OpenAI itself
    # answers "gpt-4o-2024-08-06" to "gpt-4o"), and provider fields such as the fingerprint survive.
    assert completion.model == UPSTREAM_IDS["gpt-4o"]
    assert completion.system_fingerprint == "fp_mock"


def test_upstream_gets_the_provider_model_id_and_its_own_key(client, mock):
    client.chat.completions.create(model="gpt-4o", messages=hello())
    req = mock.only_request()
    assert req["method"] == "POST"
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == UPSTREAM_IDS["gpt-4o"], "the upstream must get the provider id, not the alias"
    assert req["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    for name, value in req["headers"].items():
        assert MASTER_KEY not in value, f"the client's key leaked upstream in {name}"


def test_standard_and_extra_params_reach_the_upstream_unchanged(client, mock):
    extra = {
        "some_future_param": {"nested": [1, 2.5, "three", None, True]},
        "top_k": 40,
        "repetition_penalty": 1.1,
    }
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi there"},
    ]
    completion = client.chat.completions.create(
        model="other",
        messages=messages,
        temperature=0.2,
        max_tokens=50,
        logit_bias={"50256": -100},
        user="user-123",
        extra_body=extra,
    )
    assert completion.choices[0].message.content == "echo: hi there"

    sent = mock.only_request()["body"]
    assert sent["model"] == UPSTREAM_IDS["other"]
    assert sent["messages"] == messages
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 50
    assert sent["logit_bias"] == {"50256": -100}
    assert sent["user"] == "user-123"
    for key, value in extra.items():
        assert sent[key] == value, key


def test_max_tokens_truncation_is_reported(client, mock):
    completion = client.chat.completions.create(
        model="gpt-4o", messages=hello("one two three four"), max_tokens=2
    )
    assert completion.choices[0].message.content == "echo: one"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 2


def test_with_raw_response_shows_a_request_id(client, mock):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=hello())
    assert raw.status_code == 200
    request_id = raw.headers.get("x-request-id")
    assert request_id, dict(raw.headers)
    assert raw.headers.get("content-type", "").startswith("application/json")
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello gateway"
    # the SDK exposes the same id on the parsed object
    assert getattr(completion, "_request_id", request_id) == request_id


def test_client_chosen_request_id_is_kept(client, mock):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=hello(), extra_headers={"x-request-id": "compat-req-42"}
    )
    assert raw.headers.get("x-request-id") == "compat-req-42"
