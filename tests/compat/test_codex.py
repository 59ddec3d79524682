"""OpenAI's Codex CLI (npm ``@openai/codex``) through the gateway's Responses front door.

``codex exec`` runs non-interactively with a model provider whose ``base_url`` is the
gateway's ``/v1`` and ``wire_api = "responses"``, its API key (the master key) read from
the variable named by ``env_key``: no login, nothing but the gateway. The config is a
``config.toml`` in a temporary ``CODEX_HOME``, with hosted web search and the sub-agent
tools off (Codex sends those as ``web_search`` and ``namespace`` tools, which the
gateway's Responses door refuses with a 400: it serves function tools only). The model is "gpt-4o" on the mock's
OpenAI API (the gateway serves Responses through chat). The mock answers
"echo: <last user text>" and, when the prompt says "call tool", calls Codex's first tool
with arguments ``{}``: Codex runs it (the arguments lack what the tool needs, so it
reports an error), sends the result back as a ``function_call_output`` and the mock's
echo of it ends the turn.

The CLI is installed by scripts/compat.sh into ``.npm-tools/`` (pinned version); set
``LITER_LLM_CODEX_BIN`` to use another.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import MASTER_KEY, REPO

CODEX = Path(os.environ.get("LITER_LLM_CODEX_BIN", REPO / ".npm-tools/node_modules/.bin/codex"))

CONFIG = """\
model = "{model}"
model_provider = "liter-llm"
approval_policy = "never"
sandbox_mode = "read-only"
# Hosted web search and the namespace-grouped multi-agent tools are not function tools:
# the gateway's Responses door (served through chat) refuses them with a 400.
web_search = "disabled"

[agents]
enabled = false

[model_providers.liter-llm]
name = "liter-llm"
base_url = "{base_url}"
env_key = "LITER_LLM_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


def run_codex(gateway, model: str, prompt: str, home: Path) -> list[dict]:
    """``codex exec --json``: its JSONL events."""
    codex_home = home / "codex-home"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(CONFIG.format(model=model, base_url=gateway.base_url))
    work = home / "work"
    work.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "LITER_LLM_API_KEY": MASTER_KEY,
        "NO_COLOR": "1",
    }
    done = subprocess.run(
        [str(CODEX), "exec", "--json", "--skip-git-repo-check", prompt],
        env=env, cwd=work, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"codex exited {done.returncode}: {done.stdout[-3000:]} {done.stderr[-3000:]}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def agent_messages(events: list[dict]) -> list[str]:
    return [e["item"]["text"] for e in events
            if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"]


def test_codex_answers_and_runs_a_tool_through_the_gateway(gateway, mock, tmp_path):
    assert CODEX.exists(), f"Codex is not installed at {CODEX}: run scripts/compat.sh"
    events = run_codex(gateway, "gpt-4o", "hello from codex", tmp_path)
    assert agent_messages(events) == ["echo: hello from codex"], events
    done = [e for e in events if e["type"] == "turn.completed"]
    assert len(done) == 1 and not [e for e in events if e["type"] == "turn.failed"], events
    # The usage came back through the Responses door.
    assert done[0]["usage"]["output_tokens"] == 4
    assert done[0]["usage"]["input_tokens"] > 0
    [req] = mock.requests()
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "gpt-4o-2024-08-06"
    assert req["body"]["stream"] is True
    # Codex's function tools reached the upstream as chat tools.
    names = [t["function"]["name"] for t in req["body"]["tools"]]
    assert "exec_command" in names

    mock.reset()
    events = run_codex(gateway, "gpt-4o", "please call tool now", tmp_path)
    # The mock called Codex's first tool; Codex ran it and sent its result back in a
    # second request, whose answer (the mock's echo of that result) ended the turn.
    calls = [r for r in mock.requests() if r["path"] == "/v1/chat/completions"]
    assert len(calls) == 2, [r["path"] for r in mock.requests()]
    first_tool = calls[0]["body"]["tools"][0]["function"]["name"]
    history = calls[1]["body"]["messages"]
    assert history[-2]["tool_calls"][0]["function"]["name"] == first_tool
    assert history[-1]["role"] == "tool"
    assert history[-1]["tool_call_id"] == history[-2]["tool_calls"][0]["id"]
    texts = agent_messages(events)
    assert len(texts) == 1 and texts[0].startswith("echo: "), events
    assert [e["type"] for e in events if e["type"].startswith("turn.")] == ["turn.started", "turn.completed"]
