"""Fixtures for the OpenAI SDK compatibility suite.

One mock-upstream and one liter-llm gateway are started for the whole session, both on
port 0; their URLs are read from the "listening on http://..." line each prints, so no
test waits on a fixed sleep. The gateway's config is written to a temp dir (see
``GATEWAY_CONFIG``). Every test starts with an empty fault queue and request log on the mock.

Binaries come from ``target/debug`` (``$CARGO_TARGET_DIR/debug`` when set; override with ``LITER_LLM_BIN_DIR``); build them
with ``cargo build -p liter-llm-cli -p mock-upstream`` or run ``scripts/compat.sh``.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional

import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(
    os.environ.get(
        "LITER_LLM_BIN_DIR",
        Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug",
    )
)

MASTER_KEY = "sk-compat-master-0123456789"
VIRTUAL_KEY = "vk-compat-gpt4o-only-0001"
UPSTREAM_KEY = "sk-upstream"

# Gateway alias -> upstream model id (what the mock must receive in the body).
UPSTREAM_IDS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "other": "other-model",
    "slow": "slow-model",
    "claude": "claude-sonnet-4-20250514",
    "flaky": "flaky-model",
    "command": "command-a-03-2025",
    "cohere-embed": "embed-v4.0",
    "azure-gpt": "gpt4o-prod",
    "gemini": "gemini-2.0-flash",
    "vertex": "gemini-2.5-pro",
    "nova": "amazon.nova-lite-v1:0",
    "titan": "amazon.titan-embed-text-v2:0",
    "claude-tuned": "claude-opus-4-1-20250805",
    "gemini-3": "gemini-3-pro-preview",
    "bedrock-claude": "anthropic.claude-sonnet-4-20250514-v1:0",
    "command-fanout": "command-r-plus-08-2024",
}
# Every configured model name, in config order.
MODEL_NAMES = [
    "gpt-4o", "other", "slow", "echo", "claude", "flaky",
    "command", "cohere-embed", "azure-gpt", "gemini", "vertex", "nova", "titan",
    "claude-tuned", "gemini-3", "bedrock-claude", "command-fanout",
]
# One chat model per upstream protocol the gateway speaks (the built-in echo aside), and
# the path prefix of its requests on the mock: the front-door suites (test_messages.py,
# test_responses.py) run each test on every one.
PROTOCOL_PATHS = {
    "gpt-4o": "/v1/chat/completions",
    "azure-gpt": "/openai/deployments/gpt4o-prod/chat/completions",
    "claude": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.0-flash:",
    "vertex": "/v1/projects/compat-project/locations/us-central1/publishers/google/models/gemini-2.5-pro:",
    "nova": "/model/amazon.nova-lite-v1%3A0/converse",
    "command": "/v2/chat",
}
PROTOCOL_MODELS = list(PROTOCOL_PATHS)
# The [[aliases]] patterns, in config order: /v1/models lists them after the models.
ALIAS_PATTERNS = ["anthropic/*"]
# What VIRTUAL_KEY may use.
VIRTUAL_KEY_MODELS = ["gpt-4o"]

GATEWAY_CONFIG = """\
[server]
host = "127.0.0.1"
port = 0

[general]
master_key = "{master}"
max_retries = 0
default_timeout_secs = 30

[[models]]
name = "gpt-4o"
provider_model = "openai/gpt-4o-2024-08-06"
base_url = "{base}"
api_key = "{upstream_key}"

[[models]]
name = "other"
provider_model = "openai/other-model"
base_url = "{base}"
api_key = "{upstream_key}"

# Used by the timeout test: the mock hangs, the gateway gives up after 1 s.
[[models]]
name = "slow"
provider_model = "openai/slow-model"
base_url = "{base}"
api_key = "{upstream_key}"
timeout_secs = 1

# The built-in echo provider: answered in-process, never reaches the mock.
[[models]]
name = "echo"
provider_model = "mock/echo"

# Native Anthropic provider: base_url is the mock's root (no /v1); the gateway adds /v1/messages.
[[models]]
name = "claude"
provider_model = "anthropic/claude-sonnet-4-20250514"
api_key = "{upstream_key}"
base_url = "{root}"

# A pool that falls back to gpt-4o once its attempt (max_retries = 0) has failed.
[[models]]
name = "flaky"
provider_model = "openai/flaky-model"
base_url = "{base}"
api_key = "{upstream_key}"
fallbacks = ["gpt-4o"]

# Native Cohere (Chat v2, Embed v2): base_url is the mock's root; the gateway adds /v2/....
[[models]]
name = "command"
provider_model = "cohere/command-a-03-2025"
api_key = "{upstream_key}"
base_url = "{root}"

[[models]]
name = "cohere-embed"
provider_model = "cohere/embed-v4.0"
api_key = "{upstream_key}"
base_url = "{root}"

# Azure OpenAI: the deployment "gpt4o-prod" at the mock's root, key in api-key.
[[models]]
name = "azure-gpt"
provider_model = "azure/gpt4o-prod"
api_key = "{upstream_key}"
base_url = "{root}"

# Native Gemini API provider: the gateway adds /v1beta/models/<id>:generateContent.
[[models]]
name = "gemini"
provider_model = "gemini/gemini-2.0-flash"
api_key = "{upstream_key}"
base_url = "{root}"

# Vertex AI with the test-only service account, whose token_uri is the mock's /token.
[[models]]
name = "vertex"
provider_model = "vertex_ai/gemini-2.5-pro"
vertex_project = "compat-project"
vertex_location = "us-central1"
vertex_credentials = "{vertex_creds}"
base_url = "{root}"

# Native Bedrock (Converse, SigV4, event stream): base_url is the mock's root; the gateway
# adds /model/{{id}}/converse (or /converse-stream, /invoke).
[[models]]
name = "nova"
provider_model = "bedrock/amazon.nova-lite-v1:0"
aws_access_key_id = "AKIDCOMPAT"
aws_secret_access_key = "compat-secret"
aws_region_name = "us-east-1"
base_url = "{root}"

[[models]]
name = "titan"
provider_model = "bedrock/amazon.titan-embed-text-v2:0"
aws_access_key_id = "AKIDCOMPAT"
aws_secret_access_key = "compat-secret"
aws_region_name = "us-east-1"
base_url = "{root}"

# test_fidelity.py: a Claude model with its own thinking budget for "low" and n > 1
# served by fan-out; a Gemini 3 model (thinkingLevel); Claude on Bedrock; Cohere with fan-out.
[[models]]
name = "claude-tuned"
provider_model = "anthropic/claude-opus-4-1-20250805"
api_key = "{upstream_key}"
base_url = "{root}"
fan_out_n = true
reasoning_budgets = {{ low = 3000 }}

[[models]]
name = "gemini-3"
provider_model = "gemini/gemini-3-pro-preview"
api_key = "{upstream_key}"
base_url = "{root}"

[[models]]
name = "bedrock-claude"
provider_model = "bedrock/anthropic.claude-sonnet-4-20250514-v1:0"
aws_access_key_id = "AKIDCOMPAT"
aws_secret_access_key = "compat-secret"
aws_region_name = "us-east-1"
base_url = "{root}"
fan_out_n = true

[[models]]
name = "command-fanout"
provider_model = "cohere/command-r-plus-08-2024"
api_key = "{upstream_key}"
base_url = "{root}"
fan_out_n = true

# `anthropic/<id>` sent directly by a client goes to the mock with these credentials.
[[aliases]]
pattern = "anthropic/*"
api_key = "{upstream_key}"
base_url = "{root}"

[[keys]]
key = "{vkey}"
description = "compat suite: gpt-4o only"
models = ["gpt-4o"]

# test_messages.py: one request a minute.
[[keys]]
key = "vk-compat-messages-rpm-0001"
description = "compat suite: messages rpm"
rpm = 1

# The files API on a local folder (metadata in the default SQLite file beside this config).
[files]
backend = "fs"

[files.backend_config]
root = "{files_root}"
"""

STARTUP_TIMEOUT_SECS = 60
LISTENING = re.compile(r"listening on (http://[0-9A-Za-z.\[\]:-]+)")

# Plain HTTP to 127.0.0.1 must never go through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for _var in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    os.environ[_var] = ",".join(_hosts + ["127.0.0.1", "localhost"])


class Process:
    """A child process whose combined output is read by a thread until it exits.

    The first "listening on http://..." line is its readiness signal. Reading never stops,
    so a chatty process cannot block on a full pipe; the last lines are kept for failure
    messages.
    """

    def __init__(self, name: str, argv: list[str], env: Optional[dict[str, str]] = None):
        self.name = name
        if not Path(argv[0]).is_file():
            raise RuntimeError(
                f"{argv[0]} not found: build it with "
                "`cargo build -p liter-llm-cli -p mock-upstream` (or run scripts/compat.sh)"
            )
        self.lines: collections.deque[str] = collections.deque(maxlen=400)
        self._ready: queue.Queue[Optional[str]] = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()
        try:
            url = self._ready.get(timeout=STARTUP_TIMEOUT_SECS)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"{name} printed no listening line in {STARTUP_TIMEOUT_SECS}s:\n{self.output()}")
        if url is None:
            code = self.proc.wait()
            raise RuntimeError(f"{name} exited with {code} before listening:\n{self.output()}")
        self.url = url.rstrip("/")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        announced = False
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if not announced:
                m = LISTENING.search(line)
                if m:
                    announced = True
                    self._ready.put(m.group(1))
        if not announced:
            self._ready.put(None)

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> int:
        """SIGTERM, then wait; SIGKILL only if it does not stop within 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


def http_json(method: str, url: str, body: Any = None, headers: Optional[dict[str, str]] = None,
              raw: Optional[bytes] = None) -> tuple[int, dict[str, str], Any]:
    """One plain HTTP request (stdlib only): (status, lowercased headers, parsed JSON or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None and "content-type" not in {k.lower() for k in req.headers}:
        req.add_header("Content-Type", "application/json")
    try:
        with _opener.open(req, timeout=15) as resp:
            status, hdrs, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, hdrs, payload = err.code, err.headers, err.read()
    text = payload.decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return status, {k.lower(): v for k, v in hdrs.items()}, parsed


class Mock:
    """The mock-upstream process and its /__mock/ control API."""

    def __init__(self, process: Process):
        self.process = process
        self.url = process.url
        self.base_url = self.url + "/v1"

    def _control(self, method: str, route: str, body: Any = None) -> Any:
        status, _, payload = http_json(method, f"{self.url}/__mock/{route}", body)
        assert status == 200, f"{method} /__mock/{route} -> {status}: {payload}"
        return payload

    def push_fault(self, kind: dict[str, Any], model: Optional[str] = None, times: Optional[int] = 1) -> None:
        """Queue one fault; ``model`` is the *upstream* id; ``times=None`` means forever."""
        self._control("POST", "faults", {"faults": [{"kind": kind, "model": model, "times": times}]})

    def push_status(self, status: int, body: Any = None, retry_after_secs: Optional[int] = None,
                    model: Optional[str] = None) -> None:
        kind = {"type": "status", "status": status, "body": body, "retry_after_secs": retry_after_secs}
        self.push_fault(kind, model=model)

    def release(self, count: int = 1) -> None:
        """Let ``count`` requests held by a ``hold`` or ``hold_stream`` fault go on."""
        self._control("POST", "release", {"count": count})

    def faults(self) -> list[dict[str, Any]]:
        return self._control("GET", "faults")

    def reset(self) -> None:
        self._control("DELETE", "faults")
        self._control("DELETE", "requests")

    def requests(self) -> list[dict[str, Any]]:
        return self._control("GET", "requests")

    def model_requests(self, model: str) -> list[dict[str, Any]]:
        """The recorded requests to ``model``'s chat endpoint (see ``PROTOCOL_PATHS``;
        a Vertex token exchange is left out), with ``headers`` as in ``only_request``."""
        seen = [r for r in self.requests() if r["path"].startswith(PROTOCOL_PATHS[model])]
        return [_header_dict(r) for r in seen]

    def only_request(self) -> dict[str, Any]:
        """The single recorded request, with ``headers`` turned into a dict of first values."""
        seen = self.requests()
        assert len(seen) == 1, f"expected exactly one upstream request, got {json.dumps(seen, indent=1)}"
        return _header_dict(seen[0])


def _header_dict(recorded: dict[str, Any]) -> dict[str, Any]:
    """A recorded request with ``headers`` turned into a dict of first values."""
    req = dict(recorded)
    headers: dict[str, str] = {}
    for name, value in req["headers"]:
        headers.setdefault(name.lower(), value)
    req["headers"] = headers
    return req


class Gateway:
    def __init__(self, process: Process, config_path: Path):
        self.process = process
        self.config_path = config_path
        self.url = process.url
        self.base_url = self.url + "/v1"

    def request_line(self, request_id: str, timeout_secs: float = 15.0) -> Optional[str]:
        """The gateway's request log line for ``request_id``, waiting (bounded) for it: a
        stream's line is written when its body ends. ``None`` if it never came."""
        deadline = time.monotonic() + timeout_secs
        while True:
            for line in list(self.process.lines):
                if f'request_id="{request_id}"' in line:
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)


# OPENAI_API_KEY, ANTHROPIC_BASE_URL, GROQ_API_BASE, TOGETHER_API_KEY, ...
PROVIDER_VARIABLE_SUFFIXES = ("_API_KEY", "_API_BASE", "_BASE_URL")


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # These would override the config we write (clap reads them as flag defaults).
    for var in ("LITER_LLM_MASTER_KEY", "LITER_LLM_LOG_FORMAT"):
        env.pop(var, None)
    # A provider key variable in the environment would make that provider reachable by name
    # and listed by /v1/models ("<provider>/*"); a base URL variable could redirect it. The
    # session config must be all there is.
    for var in list(env):
        if var.endswith(PROVIDER_VARIABLE_SUFFIXES):
            env.pop(var)
    env["RUST_LOG"] = "info"  # the readiness line is logged at info
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def mock() -> Iterator[Mock]:
    proc = Process("mock-upstream", [str(BIN_DIR / "mock-upstream"), "--port", "0"], env=_child_env())
    try:
        yield Mock(proc)
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def gateway(mock: Mock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = tmp_path_factory.mktemp("gateway") / "liter-llm-proxy.toml"
    # The test-only service account (crates/liter-llm/tests/fixtures/gemini), token_uri on the mock.
    account = json.loads((REPO / "crates/liter-llm/tests/fixtures/gemini/TEST-ONLY-service-account.json").read_text())
    account["token_uri"] = mock.url + "/token"
    creds = config.parent / "vertex-sa.json"
    creds.write_text(json.dumps(account))
    config.write_text(GATEWAY_CONFIG.format(
        master=MASTER_KEY, vkey=VIRTUAL_KEY, upstream_key=UPSTREAM_KEY, base=mock.base_url,
        root=mock.url, vertex_creds=creds, files_root=config.parent / "files",
    ))
    proc = Process("liter-llm", [str(BIN_DIR / "liter-llm"), "api", "--config", str(config)], env=_child_env())
    try:
        yield Gateway(proc, config)
    finally:
        code = proc.stop()
        # A clean SIGTERM shutdown exits 0; anything else is worth failing the session for.
        assert code == 0, f"gateway exited with {code} on SIGTERM:\n{proc.output()}"


@pytest.fixture(autouse=True)
def _reset_mock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts (and leaves) the mock with no queued faults and no recorded requests.

    A fault still queued after the test never fired (wrong model filter, request never sent),
    so whatever the test asserted did not come from it: that is reported as an error. A fault
    queued forever (``times=None``) stays queued whether it fired or not, so it is not checked
    here: a test using one checks the upstream requests instead.
    """
    if "mock" not in request.fixturenames:
        yield
        return
    mock: Mock = request.getfixturevalue("mock")
    mock.reset()
    yield
    leftover = [f for f in mock.faults() if f.get("times") is not None]
    mock.reset()
    assert leftover == [], f"queued faults never fired: {leftover}"


def make_client(gateway: Gateway, api_key: str) -> openai.OpenAI:
    # No SDK retries: every error must surface exactly as the gateway sent it.
    return openai.OpenAI(base_url=gateway.base_url, api_key=api_key, max_retries=0, timeout=20.0)


@pytest.fixture
def client(gateway: Gateway, mock: Mock) -> Iterator[openai.OpenAI]:
    """An SDK client with the master key."""
    with make_client(gateway, MASTER_KEY) as c:
        yield c


@pytest.fixture
def vclient(gateway: Gateway, mock: Mock) -> Iterator[openai.OpenAI]:
    """An SDK client with the virtual key (allowed: gpt-4o only)."""
    with make_client(gateway, VIRTUAL_KEY) as c:
        yield c


def hello(text: str = "hello gateway") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
