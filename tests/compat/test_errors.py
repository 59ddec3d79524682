"""Errors as the SDK sees them: the right exception class, status, and OpenAI error fields."""

from __future__ import annotations

import openai
import pytest

from conftest import MASTER_KEY, UPSTREAM_IDS, VIRTUAL_KEY, hello, http_json, make_client


def assert_openai_error_body(err: openai.APIStatusError) -> dict:
    """The gateway's error JSON is OpenAI's shape: {"error": {message, type, param, code}}."""
    body = err.response.json()
    assert set(body) == {"error"}, body
    detail = body["error"]
    for field in ("message", "type", "param", "code"):
        assert field in detail, f"no {field} in {body}"
    assert isinstance(detail["message"], str) and detail["message"]
    # what the SDK parsed out of it
    assert err.message == detail["message"] or detail["message"] in err.message
    assert err.code == detail["code"]
    assert err.type == detail["type"]
    assert err.param == detail["param"]
    assert err.request_id == err.response.headers.get("x-request-id")
    assert err.request_id, "errors carry an x-request-id too"
    return detail


def test_wrong_key_is_authentication_error(gateway, mock):
    with make_client(gateway, "sk-wrong-key") as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.chat.completions.create(model="gpt-4o", messages=hello())
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    err = info.value
    assert err.status_code == 401
    detail = assert_openai_error_body(err)
    assert detail["code"] == "invalid_api_key"
    assert "sk-wrong-key" not in detail["message"]
    assert mock.requests() == [], "nothing may reach the upstream"


def test_virtual_key_on_a_disallowed_model_is_permission_denied(vclient, mock):
    assert vclient.chat.completions.create(model="gpt-4o", messages=hello()).choices
    with pytest.raises(openai.PermissionDeniedError) as info:
        vclient.chat.completions.create(model="other", messages=hello())
    err = info.value
    assert err.status_code == 403
    detail = assert_openai_error_body(err)
    assert "other" in detail["message"]
    assert VIRTUAL_KEY not in detail["message"]
    assert err.param == "model"
    assert len(mock.requests()) == 1, "only the allowed call went upstream"


@pytest.mark.parametrize("key", ["master", "virtual"])
def test_unknown_model_is_not_found(gateway, mock, key):
    with make_client(gateway, MASTER_KEY if key == "master" else VIRTUAL_KEY) as c:
        with pytest.raises(openai.NotFoundError) as info:
            c.chat.completions.create(model="no-such-model", messages=hello())
    err = info.value
    assert err.status_code == 404
    detail = assert_openai_error_body(err)
    assert detail["code"] == "model_not_found"
    assert "no-such-model" in detail["message"]
    assert mock.requests() == []


@pytest.mark.parametrize(
    "raw",
    [b'{"model": "gpt-4o", ', b"not json", b"[]", b""],
    ids=["truncated", "not-json", "array", "empty"],
)
def test_malformed_body_is_400(gateway, mock, raw):
    status, headers, body = http_json(
        "POST",
        gateway.base_url + "/chat/completions",
        raw=raw,
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
    )
    assert status == 400, body
    assert headers["content-type"].startswith("application/json")
    assert body["error"]["type"] == "invalid_request_error"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert mock.requests() == []


def test_invalid_model_field_is_bad_request_through_the_sdk(client, mock):
    # The SDK sends whatever it is given; the gateway itself rejects a non-string model.
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body={"model": 42, "messages": hello()}, cast_to=object)
    assert info.value.status_code == 400
    detail = assert_openai_error_body(info.value)
    assert detail["type"] == "invalid_request_error"
    assert mock.requests() == []


PROVIDER_400 = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


def test_upstream_400_is_bad_request_with_the_provider_message(client, mock):
    mock.push_status(400, body=PROVIDER_400)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=hello())
    err = info.value
    assert err.status_code == 400
    detail = assert_openai_error_body(err)
    assert "maximum context length is 8192 tokens" in err.message
    assert err.code == "context_length_exceeded"
    assert err.param == "messages"
    assert err.type == "invalid_request_error"
    assert len(mock.requests()) == 1
    assert detail["message"] == PROVIDER_400["error"]["message"]


def test_upstream_400_before_a_stream_raises_at_create(client, mock):
    mock.push_status(400, body=PROVIDER_400)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=hello(), stream=True)
    assert info.value.code == "context_length_exceeded"


def test_upstream_429_is_rate_limit_error_with_retry_after(client, mock):
    mock.push_status(429, retry_after_secs=7)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=hello())
    err = info.value
    assert err.status_code == 429
    assert err.response.headers.get("retry-after") == "7"
    assert_openai_error_body(err)
    assert len(mock.requests()) == 1, "max_retries = 0: no retry by the gateway or the SDK"


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_5xx_is_502(client, mock, status):
    mock.push_status(status)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o", messages=hello())
    err = info.value
    assert err.status_code == 502
    detail = assert_openai_error_body(err)
    assert detail["code"] == "upstream_error"
    assert str(status) in detail["message"]


def test_dropped_upstream_connection_is_502(client, mock):
    mock.push_fault({"type": "drop_connection"})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o", messages=hello())
    assert info.value.status_code == 502
    assert_openai_error_body(info.value)


def test_upstream_hang_past_the_model_timeout_is_504(client, mock):
    # model "slow" has timeout_secs = 1; the mock never answers
    mock.push_fault({"type": "hang"}, model=UPSTREAM_IDS["slow"])
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="slow", messages=hello(), timeout=15)
    err = info.value
    assert err.status_code == 504
    assert isinstance(err, openai.InternalServerError)
    detail = assert_openai_error_body(err)
    assert detail["code"] == "timeout"


def test_stream_cut_mid_way_raises_api_error_while_iterating(client, mock):
    mock.push_fault({"type": "cut_stream", "after_chunks": 2}, model=UPSTREAM_IDS["gpt-4o"])
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=hello("one two three four"),
        stream=True,
        stream_options={"include_usage": True},
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    # The response had started (status 200), so this is not an APIStatusError; and it came from
    # the gateway's final error event, not from a broken connection (APIConnectionError).
    assert not isinstance(info.value, (openai.APIStatusError, openai.APIConnectionError))
    assert len(received) == 2, "the two relayed chunks arrive before the error"
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert "echo: one two three four".startswith(text)
    body = info.value.body
    assert isinstance(body, dict), body
    assert body.get("code") == "upstream_error"
    assert "gpt-4o" in info.value.message


def test_upstream_429_before_a_stream_raises_at_create(client, mock):
    mock.push_status(429, retry_after_secs=2)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=hello(), stream=True)
    assert info.value.response.headers.get("retry-after") == "2"


def test_upstream_hang_before_a_stream_is_504_at_create(client, mock):
    mock.push_fault({"type": "hang"}, model=UPSTREAM_IDS["slow"])
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="slow", messages=hello(), stream=True, timeout=15)
    assert info.value.status_code == 504
    assert info.value.code == "timeout"


def test_stream_cut_before_any_chunk_raises_at_create(client, mock):
    # Until its first chunk a stream is routed like any other request: an upstream stream that
    # breaks before any data is a transient failure, retried elsewhere or handed to the
    # fallbacks (see test_routing.py). "gpt-4o" has neither (max_retries = 0), so no 200 was
    # ever sent and the error arrives as a status: the SDK raises at create, not while iterating.
    mock.push_fault({"type": "cut_stream", "after_chunks": 0}, model=UPSTREAM_IDS["gpt-4o"])
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o", messages=hello(), stream=True)
    err = info.value
    assert err.status_code == 502
    detail = assert_openai_error_body(err)
    assert detail["code"] == "upstream_error"
    assert detail["type"] == "api_error"
    assert "gpt-4o" in detail["message"]
    assert len(mock.requests()) == 1
