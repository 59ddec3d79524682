"""Claude Code itself (npm ``@anthropic-ai/claude-code``) through the gateway.

``claude -p`` runs non-interactively with ``ANTHROPIC_BASE_URL`` pointed at the gateway
and the master key as its API key, once for a model on the mock's Anthropic API (the
gateway forwards Claude Code's requests as they came) and once for one on the mock's
OpenAI API (translated both ways). The mocks answer "echo: <last user text>" and, when
the prompt says "call tool", call Claude Code's first tool: Claude Code runs it (its
input is empty, so the tool reports an error), sends the result back, and the second
answer ends the run.

For a model whose name is not Claude's, Claude Code sends Anthropic's controls
(``thinking: {"type": "adaptive"}``, ``output_config.effort``, ``context_management``).
The mock's OpenAI API refuses them as OpenAI's own does, so the run on the OpenAI-format
upstream passes only because the gateway translates them (``reasoning_effort``) and
leaves context editing out.

The CLI is installed by scripts/compat.sh into ``.npm-tools/`` (pinned version); set
``LITER_LLM_CLAUDE_BIN`` to use another.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import MASTER_KEY, REPO

CLAUDE = Path(os.environ.get("LITER_LLM_CLAUDE_BIN", REPO / ".npm-tools/node_modules/.bin/claude"))


def run_claude(gateway, model: str, prompt: str, home: Path) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": MASTER_KEY,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        # Nothing but the gateway: no telemetry, no update checks.
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    done = subprocess.run(
        [str(CLAUDE), "-p", prompt, "--output-format", "json"],
        env=env, cwd=home, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return json.loads(done.stdout)


@pytest.mark.parametrize("model,upstream", [("claude", "/v1/messages"), ("gpt-4o", "/v1/chat/completions")])
def test_claude_code_answers_and_runs_a_tool_through_the_gateway(gateway, mock, tmp_path, model, upstream):
    assert CLAUDE.exists(), f"Claude Code is not installed at {CLAUDE}: run scripts/compat.sh"
    first = run_claude(gateway, model, "hello from claude code", tmp_path)
    assert first["is_error"] is False, first
    assert first["result"].startswith("echo: ") and first["result"].endswith("hello from claude code")
    assert first["num_turns"] == 1

    mock.reset()
    second = run_claude(gateway, model, "please call tool now", tmp_path)
    assert second["is_error"] is False, second
    assert second["num_turns"] == 2, second
    # Two model calls reached the upstream in its own format; the second carries the
    # tool's result for the first one's call.
    calls = [r for r in mock.requests() if r["path"].split("?")[0] == upstream]
    assert len(calls) == 2, [r["path"] for r in mock.requests()]
    body = json.dumps(calls[1]["body"])
    assert ("tool_result" if model == "claude" else '"role": "tool"') in body
    if model != "claude":
        # Claude Code's adaptive thinking arrived as OpenAI's reasoning control.
        for call in calls:
            assert call["body"]["reasoning_effort"] in ("low", "medium", "high"), call["body"]
            assert not {"thinking", "output_config", "context_management"} & set(call["body"])
    # Claude Code's usage came back through the gateway's accounting.
    assert second["usage"]["output_tokens"] > 0
