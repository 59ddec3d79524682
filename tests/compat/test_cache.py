"""The response cache through the official OpenAI SDK: a gateway of this module's own
(memory cache) in front of the session's mock. Hits are seen in the headers the SDK's
raw responses expose, and in the mock's request log (a hit never reaches it)."""

from __future__ import annotations

from typing import Iterator

import openai
import pytest

from conftest import BIN_DIR, MASTER_KEY, UPSTREAM_KEY, Gateway, Mock, Process, _child_env, hello

CONFIG = """\
[server]
host = "127.0.0.1"
port = 0

[general]
master_key = "{master}"
max_retries = 0

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o-2024-08-06"
base_url = "{base}"
api_key = "{upstream_key}"

[cache]
max_entries = 256
ttl_seconds = 600
"""


@pytest.fixture(scope="module")
def cached_gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = tmp_path_factory.mktemp("cached") / "liter-llm-proxy.toml"
    config.write_text(CONFIG.format(master=MASTER_KEY, base=mock.base_url, upstream_key=UPSTREAM_KEY))
    proc = Process("liter-llm-cached", [str(BIN_DIR / "liter-llm"), "api", "--config", str(config)],
                   env=_child_env())
    try:
        yield Gateway(proc, config)
    finally:
        proc.stop()


@pytest.fixture
def cclient(cached_gateway: Gateway, mock: Mock) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=cached_gateway.base_url, api_key=MASTER_KEY, max_retries=0,
                       timeout=20.0) as c:
        yield c


def test_a_repeated_completion_is_a_hit_with_no_upstream_call(cclient, mock):
    first = cclient.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=hello("sdk cache one"), temperature=0)
    second = cclient.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=hello("sdk cache one"), temperature=0, user="another-user")
    assert first.headers["x-liter-llm-cache"] == "miss"
    assert second.headers["x-liter-llm-cache"] == "hit"
    assert first.headers["x-litellm-cache-key"] == second.headers["x-litellm-cache-key"]
    a, b = first.parse(), second.parse()
    assert a.choices[0].message.content == b.choices[0].message.content == "echo: sdk cache one"
    assert b.usage is not None and b.usage.total_tokens == a.usage.total_tokens
    assert len(mock.requests()) == 1


def test_the_cache_body_field_is_honoured_and_not_sent_upstream(cclient, mock):
    bypass = cclient.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=hello("sdk no store"), extra_body={"cache": {"no-store": True}})
    assert bypass.headers["x-liter-llm-cache"] == "bypass"
    assert "cache" not in mock.only_request()["body"]
    again = cclient.chat.completions.with_raw_response.create(model="gpt-4o", messages=hello("sdk no store"))
    assert again.headers["x-liter-llm-cache"] == "miss", "no-store stored nothing"
    header = cclient.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=hello("sdk no store"), extra_headers={"Cache-Control": "no-cache"})
    assert header.headers["x-liter-llm-cache"] == "bypass"
    assert len(mock.requests()) == 3


def test_a_streamed_answer_is_replayed_to_the_sdk(cclient, mock):
    stream = cclient.chat.completions.create(
        model="gpt-4o", messages=hello("sdk stream cache"), stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: sdk stream cache"
    whole = cclient.chat.completions.with_raw_response.create(model="gpt-4o", messages=hello("sdk stream cache"))
    assert whole.headers["x-liter-llm-cache"] == "hit"
    assert whole.parse().choices[0].message.content == text
    replay = cclient.chat.completions.create(
        model="gpt-4o", messages=hello("sdk stream cache"), stream=True,
        stream_options={"include_usage": True})
    chunks = list(replay)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert len(mock.requests()) == 1


def test_embeddings_are_cached(cclient, mock):
    first = cclient.embeddings.with_raw_response.create(model="gpt-4o", input=["cache", "me"])
    second = cclient.embeddings.with_raw_response.create(model="gpt-4o", input=["cache", "me"])
    assert (first.headers["x-liter-llm-cache"], second.headers["x-liter-llm-cache"]) == ("miss", "hit")
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    assert len(mock.requests()) == 1
