"""The mock upstream checked against each provider's OFFICIAL client library.

The gateway's provider adapters are tested against crates/mock-upstream; if the mock spoke
a provider's wire format wrongly, adapter and mock could be wrong together. Here each
provider's own SDK is pointed at the mock directly (no gateway in between) and must accept
what it sends: whole answers, streams (the SDK's own SSE or AWS event-stream parser,
final usage included), tool calls, embeddings, and errors, which each SDK must raise as its
own typed exception with the right status.

This module starts its own mock with ``--require-api-key SDK_KEY``, so every SDK's
authentication is checked too: Anthropic's ``x-api-key``, Azure's ``api-key``, Cohere's
Bearer key, the Gemini API's ``x-goog-api-key``, a Vertex AI access token that
google-auth obtains from the mock's OAuth token endpoint with the test-only service
account, and boto3's SigV4 signature, which the mock recomputes with SDK_KEY as the
secret access key.

SDKs parse leniently (a missing field or a misspelled enum value would often just come out
as None), so every answer the mock sends is also validated against the SDK's own types:
pydantic validation of the raw JSON (required fields, types, enum literals), and no field the
SDK does not know (google-genai's types forbid unknown fields themselves); for boto3, the
parsed output against the operation's output shape in botocore's service model.

The mock's echo model answers ``"echo: <last user text>"`` and counts words as tokens;
it calls the first declared tool when the last user text contains "call tool".
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import anthropic
import anthropic.types
import boto3
import botocore.session
import botocore.validate
import cohere
import openai
import openai.types
import openai.types.chat
import pytest
from botocore.config import Config as BotoConfig
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from google.oauth2 import service_account
import google.auth.transport.requests

from conftest import BIN_DIR, REPO, Mock, Process, _child_env
from sdk_checks import raw_post, sse_events, validated

pytestmark = [
    # The pinned model ids are old enough for the anthropic SDK to warn about them.
    pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning"),
    # cohere's own use of pydantic's v1 API.
    pytest.mark.filterwarnings("ignore::pydantic.PydanticDeprecatedSince20"),
]

SDK_KEY = "sdk-compat-secret-key"
ACCESS_KEY_ID = "AKIDSDKCOMPAT"
TIMEOUT = 20.0

CLAUDE = "claude-sonnet-4-20250514"
COMMAND = "command-a-03-2025"
GEMINI = "gemini-2.0-flash"
NOVA = "amazon.nova-lite-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
AZURE_DEPLOYMENT = "gpt4o-prod"
AZURE_API_VERSION = "2024-10-21"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def sdk_mock() -> Iterator[Mock]:
    """A mock of its own that requires SDK_KEY (as each provider carries its credential)."""
    argv = [str(BIN_DIR / "mock-upstream"), "--port", "0", "--require-api-key", SDK_KEY]
    proc = Process("mock-upstream (sdk)", argv, env=_child_env())
    try:
        yield Mock(proc)
    finally:
        proc.stop()


@pytest.fixture
def upstream(sdk_mock: Mock) -> Iterator[Mock]:
    """The SDK mock, with no queued faults or recorded requests; a fault left over fails."""
    sdk_mock.reset()
    yield sdk_mock
    leftover = sdk_mock.faults()
    sdk_mock.reset()
    assert leftover == [], f"queued faults never fired: {leftover}"


def paths(mock: Mock) -> list[str]:
    return [r["path"] for r in mock.requests()]


# --- Anthropic -------------------------------------------------------------------------


@pytest.fixture
def claude(upstream: Mock) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=SDK_KEY, base_url=upstream.url, max_retries=0, timeout=TIMEOUT) as c:
        yield c


WEATHER_ANTHROPIC = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}


def test_anthropic_message(claude, upstream):
    msg = claude.messages.create(
        model=CLAUDE, max_tokens=100, system="be brief",
        messages=[{"role": "user", "content": "hello claude"}],
    )
    assert msg.type == "message" and msg.role == "assistant" and msg.model == CLAUDE
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "echo: hello claude"
    assert msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (4, 3)
    assert paths(upstream) == ["/v1/messages"]


def test_anthropic_stream(claude):
    with claude.messages.stream(
        model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "stream to me"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream to me"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)


def test_anthropic_max_tokens_stream(claude):
    with claude.messages.stream(
        model=CLAUDE, max_tokens=2, messages=[{"role": "user", "content": "a b c d"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "echo: a"
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 2


def test_anthropic_tool_use(claude):
    msg = claude.messages.create(
        model=CLAUDE, max_tokens=100, tools=[WEATHER_ANTHROPIC],
        messages=[{"role": "user", "content": "please call tool"}],
    )
    assert msg.stop_reason == "tool_use"
    (block,) = msg.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {}
    with claude.messages.stream(
        model=CLAUDE, max_tokens=100, tools=[WEATHER_ANTHROPIC],
        messages=[{"role": "user", "content": "please call tool"}],
    ) as stream:
        final = stream.get_final_message()
    (block,) = final.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {}
    assert final.stop_reason == "tool_use"
    # The tool result goes back, and is answered.
    msg = claude.messages.create(
        model=CLAUDE, max_tokens=100, tools=[WEATHER_ANTHROPIC],
        messages=[
            {"role": "user", "content": "please call tool"},
            {"role": "assistant", "content": [b.model_dump() for b in final.content]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": block.id, "content": "sunny"},
                {"type": "text", "text": "thanks"},
            ]},
        ],
    )
    assert msg.content[0].text == "echo: thanks"


def test_anthropic_errors(claude, upstream):
    upstream.push_status(429, retry_after_secs=3, model=CLAUDE)
    with pytest.raises(anthropic.RateLimitError) as err:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 429
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "rate_limit_error"
    assert err.value.response.headers["retry-after"] == "3"

    upstream.push_status(529, model=CLAUDE)
    with pytest.raises(anthropic.OverloadedError) as err:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 529

    with anthropic.Anthropic(api_key="wrong", base_url=upstream.url, max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError) as err:
            bad.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401
    assert err.value.body["error"]["type"] == "authentication_error"


def test_anthropic_answers_match_the_sdk_types(upstream):
    headers = {"x-api-key": SDK_KEY, "anthropic-version": "2023-06-01"}
    for text, extra in [("hello", {}), ("please call tool", {"tools": [WEATHER_ANTHROPIC]}), ("a b c", {"max_tokens": 2})]:
        body = {"model": CLAUDE, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}
        validated(anthropic.types.Message, raw_post(upstream, "/v1/messages", body, headers))
        events = sse_events(raw_post(upstream, "/v1/messages", {**body, "stream": True}, headers))
        assert [name for name, _ in events] == [data["type"] for _, data in events]
        for name, data in events:
            if name != "ping":  # documented, and handled by the SDK outside its event union
                validated(anthropic.types.RawMessageStreamEvent, data)


# --- Azure OpenAI ----------------------------------------------------------------------


@pytest.fixture
def azure(upstream: Mock) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=upstream.url, api_key=SDK_KEY, api_version=AZURE_API_VERSION,
        max_retries=0, timeout=TIMEOUT,
    ) as c:
        yield c


def test_azure_chat(azure, upstream):
    completion = azure.chat.completions.create(
        model=AZURE_DEPLOYMENT, messages=[{"role": "user", "content": "hello azure"}],
    )
    assert completion.choices[0].message.content == "echo: hello azure"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 3)
    assert paths(upstream) == [
        f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions?api-version={AZURE_API_VERSION}"
    ]


def test_azure_stream(azure):
    chunks = list(azure.chat.completions.create(
        model=AZURE_DEPLOYMENT, messages=[{"role": "user", "content": "stream azure"}],
        stream=True, stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream azure"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)


def test_azure_content_filter(azure):
    completion = azure.chat.completions.create(
        model=AZURE_DEPLOYMENT, messages=[{"role": "user", "content": "please trigger the content filter"}],
    )
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content is None


def test_azure_embeddings(azure, upstream):
    result = azure.embeddings.create(model="embed-prod", input=["one", "two words"], dimensions=4)
    assert [len(d.embedding) for d in result.data] == [4, 4]
    assert result.usage.prompt_tokens == 3
    assert paths(upstream) == [f"/openai/deployments/embed-prod/embeddings?api-version={AZURE_API_VERSION}"]


def test_azure_errors(azure, upstream):
    upstream.push_status(429, retry_after_secs=1, model=AZURE_DEPLOYMENT)
    with pytest.raises(openai.RateLimitError) as err:
        azure.chat.completions.create(model=AZURE_DEPLOYMENT, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 429
    assert err.value.code == "429"

    with openai.AzureOpenAI(azure_endpoint=upstream.url, api_key="wrong", api_version=AZURE_API_VERSION,
                            max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as err:
            bad.chat.completions.create(model=AZURE_DEPLOYMENT, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401


# Azure's own annotations of a filtered completion, which the openai SDK does not model.
AZURE_EXTRA = (r"\$\.prompt_filter_results.*", r"\$\.choices\[\d+\]\.content_filter_results.*")


def test_azure_answers_match_the_sdk_types(upstream):
    headers = {"api-key": SDK_KEY}
    chat = f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions?api-version={AZURE_API_VERSION}"
    for text in ["hello", "please trigger the content filter"]:
        body = {"messages": [{"role": "user", "content": text}]}
        validated(openai.types.chat.ChatCompletion, raw_post(upstream, chat, body, headers), AZURE_EXTRA)
    body = {"messages": [{"role": "user", "content": "hello"}], "stream": True,
            "stream_options": {"include_usage": True}}
    events = sse_events(raw_post(upstream, chat, body, headers))
    assert events[-1] == (None, "[DONE]")
    for _, data in events[:-1]:
        validated(openai.types.chat.ChatCompletionChunk, data)
    embed = f"/openai/deployments/embed-prod/embeddings?api-version={AZURE_API_VERSION}"
    validated(openai.types.CreateEmbeddingResponse, raw_post(upstream, embed, {"input": ["a", "b c"]}, headers))


# --- Cohere ----------------------------------------------------------------------------


@pytest.fixture
def co(upstream: Mock) -> cohere.ClientV2:
    return cohere.ClientV2(api_key=SDK_KEY, base_url=upstream.url, timeout=TIMEOUT, max_retries=0)


WEATHER_COHERE = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                    "parameters": WEATHER_SCHEMA}}


def test_cohere_chat(co, upstream):
    res = co.chat(model=COMMAND, messages=[{"role": "system", "content": "be brief"},
                                           {"role": "user", "content": "hello cohere"}])
    assert res.finish_reason == "COMPLETE"
    assert res.message.content[0].text == "echo: hello cohere"
    assert res.usage.billed_units.input_tokens == 4
    assert res.usage.billed_units.output_tokens == 3
    assert res.usage.tokens.output_tokens == 3
    assert paths(upstream) == ["/v2/chat"]


def test_cohere_stream(co):
    events = list(co.chat_stream(model=COMMAND, messages=[{"role": "user", "content": "stream cohere"}]))
    kinds = [e.type for e in events]
    assert kinds[0] == "message-start" and kinds[-1] == "message-end"
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    assert text == "echo: stream cohere"
    end = events[-1]
    assert end.delta.finish_reason == "COMPLETE"
    assert end.delta.usage.billed_units.output_tokens == 3
    assert end.delta.usage.tokens.input_tokens == 2


def test_cohere_tool_call(co):
    res = co.chat(model=COMMAND, tools=[WEATHER_COHERE], messages=[{"role": "user", "content": "call tool"}])
    assert res.finish_reason == "TOOL_CALL"
    (call,) = res.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    events = list(co.chat_stream(model=COMMAND, tools=[WEATHER_COHERE],
                                 messages=[{"role": "user", "content": "call tool"}]))
    start = next(e for e in events if e.type == "tool-call-start")
    assert start.delta.message.tool_calls.function.name == "get_weather"
    args = "".join(e.delta.message.tool_calls.function.arguments for e in events if e.type == "tool-call-delta")
    assert json.loads(args) == {"city": "Paris"}
    assert events[-1].delta.finish_reason == "TOOL_CALL"


def test_cohere_embed(co, upstream):
    res = co.embed(model="embed-v4.0", texts=["one", "two words"], input_type="search_document",
                   embedding_types=["float"])
    assert [len(v) for v in res.embeddings.float_] == [8, 8]
    assert res.meta.billed_units.input_tokens == 3
    assert paths(upstream) == ["/v2/embed"]


def test_cohere_errors(co, upstream):
    upstream.push_status(429, model=COMMAND)
    with pytest.raises(cohere.errors.TooManyRequestsError) as err:
        co.chat(model=COMMAND, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 429

    bad = cohere.ClientV2(api_key="wrong", base_url=upstream.url, max_retries=0)
    with pytest.raises(cohere.errors.UnauthorizedError) as err:
        bad.chat(model=COMMAND, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401


# message-start's empty message skeleton: in the API reference's streamed example, but the
# SDK's type for it names only `role`.
COHERE_EXTRA = tuple(rf"\$\.delta\.message\.{f}" for f in ("content", "tool_plan", "tool_calls", "citations"))


def test_cohere_answers_match_the_sdk_types(upstream):
    headers = {"Authorization": f"Bearer {SDK_KEY}"}
    for text, extra in [("hello", {}), ("call tool", {"tools": [WEATHER_COHERE]}), ("a b c", {"max_tokens": 2})]:
        body = {"model": COMMAND, "messages": [{"role": "user", "content": text}], **extra}
        validated(cohere.V2ChatResponse, raw_post(upstream, "/v2/chat", body, headers))
        events = sse_events(raw_post(upstream, "/v2/chat", {**body, "stream": True}, headers))
        for name, data in events:
            assert name == data["type"]
            validated(cohere.StreamedChatResponseV2, data, COHERE_EXTRA)
    body = {"model": "embed-v4.0", "texts": ["a"], "input_type": "search_query", "embedding_types": ["float"]}
    validated(cohere.EmbedByTypeResponse, raw_post(upstream, "/v2/embed", body, headers))


# --- Gemini API and Vertex AI ----------------------------------------------------------


def genai_options(mock: Mock, **extra: Any) -> genai_types.HttpOptions:
    # No SDK retries: every error must surface exactly as the mock sent it.
    return genai_types.HttpOptions(base_url=mock.url, timeout=int(TIMEOUT * 1000),
                                   retry_options=genai_types.HttpRetryOptions(attempts=1), **extra)


@pytest.fixture
def gemini(upstream: Mock) -> genai.Client:
    return genai.Client(api_key=SDK_KEY, http_options=genai_options(upstream))


@pytest.fixture(scope="module")
def google_credentials(sdk_mock: Mock) -> service_account.Credentials:
    """The test-only service account, whose token_uri is the mock's OAuth token endpoint."""
    info = json.loads((REPO / "crates/liter-llm/tests/fixtures/gemini/TEST-ONLY-service-account.json").read_text())
    info["token_uri"] = sdk_mock.url + "/token"
    return service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM])


@pytest.fixture
def vertex(upstream: Mock, google_credentials) -> genai.Client:
    return genai.Client(vertexai=True, project="sdk-project", location="us-central1",
                        credentials=google_credentials, http_options=genai_options(upstream))


WEATHER_GEMINI = genai_types.Tool(function_declarations=[genai_types.FunctionDeclaration(
    name="get_weather", description="Weather", parameters_json_schema=WEATHER_SCHEMA)])
NO_AFC = genai_types.AutomaticFunctionCallingConfig(disable=True)


def test_google_auth_gets_a_token_from_the_mock(upstream, google_credentials):
    google_credentials.refresh(google.auth.transport.requests.Request())
    assert google_credentials.token.startswith("ya29.mock-token-")
    assert google_credentials.valid
    assert paths(upstream) == ["/token"]


@pytest.mark.parametrize("backend", ["gemini", "vertex"])
def test_genai_generate(backend, request, upstream):
    client: genai.Client = request.getfixturevalue(backend)
    resp = client.models.generate_content(
        model=GEMINI, contents="hello gemini",
        config=genai_types.GenerateContentConfig(system_instruction="be brief"),
    )
    assert resp.text == "echo: hello gemini"
    assert resp.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert resp.usage_metadata.prompt_token_count == 4
    assert resp.usage_metadata.candidates_token_count == 3
    assert resp.usage_metadata.total_token_count == 7
    generate = [p for p in paths(upstream) if p != "/token"]
    if backend == "gemini":
        assert generate == [f"/v1/models/{GEMINI}:generateContent"]
    else:
        assert generate == [
            f"/v1beta1/projects/sdk-project/locations/us-central1/publishers/google/models/{GEMINI}:generateContent"
        ]


@pytest.mark.parametrize("backend", ["gemini", "vertex"])
def test_genai_stream(backend, request):
    client: genai.Client = request.getfixturevalue(backend)
    chunks = list(client.models.generate_content_stream(model=GEMINI, contents="stream gemini please"))
    assert "".join(c.text or "" for c in chunks) == "echo: stream gemini please"
    assert len(chunks) == 4
    last = chunks[-1]
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata.prompt_token_count == 3
    assert last.usage_metadata.candidates_token_count == 4


@pytest.mark.parametrize("backend", ["gemini", "vertex"])
def test_genai_function_call(backend, request):
    client: genai.Client = request.getfixturevalue(backend)
    config = genai_types.GenerateContentConfig(tools=[WEATHER_GEMINI], automatic_function_calling=NO_AFC)
    resp = client.models.generate_content(model=GEMINI, contents="please call tool", config=config)
    (call,) = resp.function_calls
    assert call.name == "get_weather" and call.args == {}
    chunks = list(client.models.generate_content_stream(model=GEMINI, contents="please call tool", config=config))
    calls = [fc for c in chunks for fc in (c.function_calls or [])]
    assert [fc.name for fc in calls] == ["get_weather"]


def test_gemini_embed(gemini, upstream):
    resp = gemini.models.embed_content(
        model="text-embedding-004", contents=["one", "two words"],
        config=genai_types.EmbedContentConfig(output_dimensionality=4),
    )
    assert [len(e.values) for e in resp.embeddings] == [4, 4]
    assert paths(upstream) == ["/v1/models/text-embedding-004:batchEmbedContents"]


def test_vertex_embed(vertex, upstream):
    resp = vertex.models.embed_content(
        model="text-embedding-005", contents=["one", "two words"],
        config=genai_types.EmbedContentConfig(output_dimensionality=4),
    )
    assert [len(e.values) for e in resp.embeddings] == [4, 4]
    assert [e.statistics.token_count for e in resp.embeddings] == [1, 2]
    assert [p for p in paths(upstream) if p != "/token"] == [
        "/v1beta1/projects/sdk-project/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    ]


@pytest.mark.parametrize("backend", ["gemini", "vertex"])
def test_genai_errors(backend, request, upstream):
    client: genai.Client = request.getfixturevalue(backend)
    upstream.push_status(429, model=GEMINI)
    with pytest.raises(genai_errors.ClientError) as err:
        client.models.generate_content(model=GEMINI, contents="hi")
    assert err.value.code == 429
    assert err.value.status == "RESOURCE_EXHAUSTED"

    upstream.push_status(503, model=GEMINI)
    with pytest.raises(genai_errors.ServerError) as err:
        client.models.generate_content(model=GEMINI, contents="hi")
    assert err.value.code == 503
    assert err.value.status == "UNAVAILABLE"


def test_gemini_wrong_key(upstream):
    bad = genai.Client(api_key="wrong", http_options=genai_options(upstream))
    with pytest.raises(genai_errors.ClientError) as err:
        bad.models.generate_content(model=GEMINI, contents="hi")
    assert err.value.code == 400
    assert err.value.status == "INVALID_ARGUMENT"


def test_genai_answers_match_the_sdk_types(upstream, google_credentials):
    """google-genai's types forbid unknown fields: the raw JSON must name only known ones."""
    if not google_credentials.valid:
        google_credentials.refresh(google.auth.transport.requests.Request())
    vertex = f"/v1/projects/p/locations/us-central1/publishers/google/models/{GEMINI}"
    for base, headers in [(f"/v1beta/models/{GEMINI}", {"x-goog-api-key": SDK_KEY}),
                          (vertex, {"Authorization": f"Bearer {google_credentials.token}"})]:
        declarations = [{"name": "get_weather", "parameters": WEATHER_SCHEMA}]
        for text in ["hello", "please call tool", "block me", "unsafe answer"]:
            body = {"contents": [{"role": "user", "parts": [{"text": text}]}],
                    "tools": [{"functionDeclarations": declarations}]}
            validated(genai_types.GenerateContentResponse, raw_post(upstream, base + ":generateContent", body, headers))
            events = sse_events(raw_post(upstream, base + ":streamGenerateContent?alt=sse", body, headers))
            assert events
            for _, data in events:
                validated(genai_types.GenerateContentResponse, data)
    body = {"requests": [{"model": "models/e", "content": {"parts": [{"text": "a b"}]}}]}
    raw = raw_post(upstream, "/v1beta/models/e:batchEmbedContents", body, {"x-goog-api-key": SDK_KEY})
    validated(genai_types.EmbedContentResponse, raw)


# --- Claude on Vertex AI (anthropic's AnthropicVertex) ---------------------------------


@pytest.fixture
def claude_vertex(upstream: Mock, google_credentials) -> Iterator[anthropic.AnthropicVertex]:
    if not google_credentials.valid:
        google_credentials.refresh(google.auth.transport.requests.Request())
    with anthropic.AnthropicVertex(
        region="us-east5", project_id="sdk-project", access_token=google_credentials.token,
        base_url=upstream.url + "/v1", max_retries=0, timeout=TIMEOUT,
    ) as c:
        yield c


CLAUDE_VERTEX = "claude-sonnet-4@20250514"


def test_claude_on_vertex(claude_vertex, upstream):
    msg = claude_vertex.messages.create(model=CLAUDE_VERTEX, max_tokens=100,
                                        messages=[{"role": "user", "content": "hello vertex claude"}])
    assert msg.content[0].text == "echo: hello vertex claude"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (3, 4)
    with claude_vertex.messages.stream(model=CLAUDE_VERTEX, max_tokens=100,
                                       messages=[{"role": "user", "content": "stream it"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream it"
    assert final.usage.output_tokens == 3
    base = f"/v1/projects/sdk-project/locations/us-east5/publishers/anthropic/models/{CLAUDE_VERTEX}"
    assert paths(upstream) == [base + ":rawPredict", base + ":streamRawPredict"]

    upstream.push_status(429, model=CLAUDE_VERTEX)
    with pytest.raises(anthropic.RateLimitError) as err:
        claude_vertex.messages.create(model=CLAUDE_VERTEX, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 429


# --- Amazon Bedrock (boto3) ------------------------------------------------------------


def bedrock_client(mock: Mock, secret: str = SDK_KEY):
    return boto3.client(
        "bedrock-runtime", endpoint_url=mock.url, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=secret,
        config=BotoConfig(retries={"total_max_attempts": 1}, read_timeout=TIMEOUT, connect_timeout=TIMEOUT),
    )


@pytest.fixture
def bedrock(upstream: Mock):
    client = bedrock_client(upstream)
    yield client
    client.close()


BEDROCK_TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather",
                                         "inputSchema": {"json": WEATHER_SCHEMA}}}]}


BEDROCK_MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")


def assert_matches_output_shape(operation: str, output: dict[str, Any]) -> None:
    """boto3's parsed output against the operation's output shape (required members, types)."""
    shape = BEDROCK_MODEL.operation_model(operation).output_shape
    output = {k: v for k, v in output.items() if k != "ResponseMetadata"}
    report = botocore.validate.ParamValidator().validate(output, shape)
    assert not report.has_errors(), report.generate_report()


def test_bedrock_answers_match_the_service_model(bedrock):
    stream_shape = BEDROCK_MODEL.operation_model("ConverseStream").output_shape.members["stream"]
    for text in ["hello", "please call tool"]:
        request = {"modelId": NOVA, "messages": [{"role": "user", "content": [{"text": text}]}],
                   "toolConfig": BEDROCK_TOOLS}
        assert_matches_output_shape("Converse", bedrock.converse(**request))
        for event in bedrock.converse_stream(**request)["stream"]:
            assert len(event) == 1, event
            report = botocore.validate.ParamValidator().validate(event, stream_shape)
            assert not report.has_errors(), report.generate_report()


def test_bedrock_converse(bedrock, upstream):
    out = bedrock.converse(
        modelId=NOVA, system=[{"text": "be brief"}],
        messages=[{"role": "user", "content": [{"text": "hello nova"}]}],
        inferenceConfig={"maxTokens": 50},
    )
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert out["output"]["message"]["content"] == [{"text": "echo: hello nova"}]
    assert out["stopReason"] == "end_turn"
    assert out["usage"] == {"inputTokens": 4, "outputTokens": 3, "totalTokens": 7}
    assert paths(upstream) == ["/model/amazon.nova-lite-v1%3A0/converse"]


def test_bedrock_converse_stream(bedrock):
    out = bedrock.converse_stream(modelId=NOVA, messages=[{"role": "user", "content": [{"text": "stream nova"}]}])
    events = list(out["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "echo: stream nova"
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 2, "outputTokens": 3, "totalTokens": 5}


def test_bedrock_tool_use(bedrock):
    messages = [{"role": "user", "content": [{"text": "please call tool"}]}]
    out = bedrock.converse(modelId=NOVA, messages=messages, toolConfig=BEDROCK_TOOLS)
    assert out["stopReason"] == "tool_use"
    (block,) = out["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "get_weather" and block["toolUse"]["input"] == {}

    events = list(bedrock.converse_stream(modelId=NOVA, messages=messages, toolConfig=BEDROCK_TOOLS)["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    assert json.loads(args) == {}
    assert next(e for e in events if "messageStop" in e)["messageStop"]["stopReason"] == "tool_use"


def test_bedrock_titan_embeddings(bedrock, upstream):
    out = bedrock.invoke_model(modelId=TITAN, contentType="application/json", accept="application/json",
                               body=json.dumps({"inputText": "two words", "dimensions": 4}))
    body = json.loads(out["body"].read())
    assert len(body["embedding"]) == 4
    assert body["inputTextTokenCount"] == 2
    assert paths(upstream) == ["/model/amazon.titan-embed-text-v2%3A0/invoke"]


def test_bedrock_errors(bedrock, upstream):
    upstream.push_status(429, model=NOVA)
    with pytest.raises(bedrock.exceptions.ThrottlingException) as err:
        bedrock.converse(modelId=NOVA, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert err.value.response["Error"]["Message"].startswith("mock-upstream fault")

    upstream.push_status(400, model=NOVA)
    with pytest.raises(bedrock.exceptions.ValidationException) as err:
        bedrock.converse_stream(modelId=NOVA, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    wrong = bedrock_client(upstream, secret="wrong-secret")
    with pytest.raises(wrong.exceptions.ClientError) as err:
        wrong.converse(modelId=NOVA, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
