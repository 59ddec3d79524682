"""Tag routing through the official OpenAI SDK, on a gateway of this module's own that
loads LiteLLM's ``config.yaml`` as a LiteLLM user has it: three deployments of one model
tagged ``free``, ``paid`` and ``default``, with ``router_settings.enable_tag_filtering``.
Tags go as LiteLLM's documentation sends them: ``extra_body={"metadata": {"tags": [...]}}``
or the ``x-litellm-tags`` header. Deployments are told apart by their upstream model id."""

from __future__ import annotations

from typing import Iterator

import openai
import pytest

from conftest import BIN_DIR, MASTER_KEY, UPSTREAM_KEY, Gateway, Mock, Process, _child_env, hello

CONFIG = """\
model_list:
  - model_name: gpt-4
    litellm_params:
      model: openai/free-model
      api_key: {upstream_key}
      api_base: {base}
      tags: ["free"]
  - model_name: gpt-4
    litellm_params:
      model: openai/paid-model
      api_key: {upstream_key}
      api_base: {base}
      tags: ["paid"]
  - model_name: gpt-4
    litellm_params:
      model: openai/house-model
      api_key: {upstream_key}
      api_base: {base}
      tags: ["default"]
router_settings:
  enable_tag_filtering: true
general_settings:
  master_key: {master}
"""


@pytest.fixture(scope="module")
def tagged_gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = tmp_path_factory.mktemp("tagged") / "config.yaml"
    config.write_text(CONFIG.format(master=MASTER_KEY, base=mock.base_url, upstream_key=UPSTREAM_KEY))
    argv = [str(BIN_DIR / "liter-llm"), "api", "--config", str(config), "--host", "127.0.0.1", "--port", "0"]
    proc = Process("liter-llm-tagged", argv, env=_child_env())
    try:
        yield Gateway(proc, config)
    finally:
        proc.stop()


@pytest.fixture
def tclient(tagged_gateway: Gateway, mock: Mock) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=tagged_gateway.base_url, api_key=MASTER_KEY, max_retries=0,
                       timeout=20.0) as c:
        yield c


def test_metadata_tags_choose_the_deployment_and_stay_in_the_gateway(tclient, mock):
    raw = tclient.chat.completions.with_raw_response.create(
        model="gpt-4", messages=hello("paid tier"),
        extra_body={"metadata": {"tags": ["paid"], "trace": "t-1"}})
    assert raw.headers["x-liter-llm-deployment"] == "openai/paid-model"
    assert raw.parse().choices[0].message.content == "echo: paid tier"
    sent = mock.only_request()["body"]
    assert sent["model"] == "paid-model"
    assert sent["metadata"] == {"trace": "t-1"}, "the tags are not forwarded"


def test_the_header_carries_tags_too(tclient, mock):
    raw = tclient.chat.completions.with_raw_response.create(
        model="gpt-4", messages=hello("free tier"), extra_headers={"x-litellm-tags": "free"})
    assert raw.headers["x-liter-llm-deployment"] == "openai/free-model"
    stream = tclient.chat.completions.create(
        model="gpt-4", messages=hello("free stream"), stream=True,
        extra_headers={"x-litellm-tags": "nope, free"})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: free stream"
    assert [r["body"]["model"] for r in mock.requests()] == ["free-model", "free-model"]


def test_untagged_requests_go_to_the_default_deployment(tclient, mock):
    for _ in range(4):
        raw = tclient.chat.completions.with_raw_response.create(model="gpt-4", messages=hello("plain"))
        assert raw.headers["x-liter-llm-deployment"] == "openai/house-model"
    assert len(mock.requests()) == 4


def test_tags_no_deployment_carries_are_a_bad_request(tclient, mock):
    with pytest.raises(openai.BadRequestError) as caught:
        tclient.chat.completions.create(
            model="gpt-4", messages=hello("enterprise"),
            extra_body={"metadata": {"tags": ["enterprise"]}})
    err = caught.value
    assert err.status_code == 400
    assert err.code == "no_deployments_with_tag_routing"
    assert "Not allowed to access model due to tags configuration" in err.message
    assert '"enterprise"' in err.message and '"gpt-4"' in err.message
    assert mock.requests() == []
