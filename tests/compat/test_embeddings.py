"""Embeddings through the SDK (which asks for base64 unless told otherwise)."""

from __future__ import annotations

import array
import base64
import math

from conftest import UPSTREAM_IDS


def norm(vector):
    return math.sqrt(sum(x * x for x in vector))


def test_default_sdk_request_is_base64_and_decodes_to_floats(client, mock):
    resp = client.embeddings.create(model="other", input=["a b", "c"])

    sent = mock.only_request()
    assert sent["path"] == "/v1/embeddings"
    assert sent["body"]["model"] == UPSTREAM_IDS["other"]
    assert sent["body"]["encoding_format"] == "base64", "the SDK default reached the upstream"

    assert resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1]
    for item in resp.data:
        assert isinstance(item.embedding, list)
        assert len(item.embedding) == 8  # the mock's default
        assert all(isinstance(x, float) for x in item.embedding)
        assert abs(norm(item.embedding) - 1.0) < 1e-4
    assert resp.usage.prompt_tokens == 3


def test_dimensions_are_passed_through(client, mock):
    resp = client.embeddings.create(model="gpt-4o", input="hello world", dimensions=5)
    assert mock.only_request()["body"]["dimensions"] == 5
    assert len(resp.data) == 1
    assert len(resp.data[0].embedding) == 5


def test_explicit_float_format_matches_base64(client, mock):
    as_float = client.embeddings.create(model="gpt-4o", input="same text", dimensions=6, encoding_format="float")
    assert mock.requests()[0]["body"]["encoding_format"] == "float"
    as_b64 = client.embeddings.create(model="gpt-4o", input="same text", dimensions=6)
    a, b = as_float.data[0].embedding, as_b64.data[0].embedding
    assert len(a) == len(b) == 6
    assert all(abs(x - y) < 1e-6 for x, y in zip(a, b)), (a, b)


def test_explicit_base64_is_left_for_the_caller(client, mock):
    # When the caller picks base64 the SDK does not decode: the gateway must relay the string.
    resp = client.embeddings.create(model="gpt-4o", input="same text", dimensions=6, encoding_format="base64")
    payload = resp.data[0].embedding
    assert isinstance(payload, str)
    floats = array.array("f", base64.b64decode(payload))
    assert len(floats) == 6
    assert abs(norm(floats) - 1.0) < 1e-4
