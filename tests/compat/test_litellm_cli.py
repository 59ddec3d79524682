"""LiteLLM's own admin CLI, ``litellm-proxy`` (from ``litellm[cli]``, pinned in
requirements.txt), driving the gateway's model admin API: ``models list``, ``info``,
``get``, ``add``, ``update`` and ``delete``. The model it adds is served at once and
gone once deleted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MASTER_KEY, MODEL_NAMES, _child_env, hello, make_client

CLI = Path(sys.executable).parent / "litellm-proxy"
ADDED = "cli-added"


def run(gateway, tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # HOME in a temp dir: the CLI keeps its own settings under ~/.litellm.
    env = _child_env(LITELLM_PROXY_URL=gateway.url, LITELLM_PROXY_API_KEY=MASTER_KEY, HOME=str(tmp_path))
    done = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def json_out(done: subprocess.CompletedProcess):
    # The CLI prints a deprecation line (use `lite`) on stderr; stdout is the JSON.
    return json.loads(done.stdout)


def test_models_list_is_the_gateways_model_list(gateway, tmp_path):
    listed = json_out(run(gateway, tmp_path, "models", "list", "--format", "json"))
    ids = [m["id"] for m in listed]
    assert ids[: len(MODEL_NAMES)] == MODEL_NAMES


def test_models_info_tells_file_models(gateway, tmp_path):
    info = json_out(run(gateway, tmp_path, "models", "info", "--format", "json"))
    by_name = {m["model_name"]: m for m in info}
    assert by_name["gpt-4o"]["litellm_params"]["model"] == "openai/gpt-4o-2024-08-06"
    assert all(m["model_info"]["db_model"] is False for m in info)
    assert all("api_key" not in m["litellm_params"] for m in info)
    table = run(gateway, tmp_path, "models", "info").stdout
    assert "gpt-4o" in table


def test_models_add_update_get_delete(gateway, mock, tmp_path):
    made = json_out(run(gateway, tmp_path, "models", "add", ADDED, "-p", "model=mock/echo", "-p", "rpm=50"))
    model_id = made["model_id"]
    try:
        assert made["model_info"]["db_model"] is True
        client = make_client(gateway, MASTER_KEY)
        answer = client.chat.completions.create(model=ADDED, messages=hello())
        assert answer.choices[0].message.content

        got = json_out(run(gateway, tmp_path, "models", "get", "--id", model_id))
        assert got["model_name"] == ADDED and got["litellm_params"]["rpm"] == 50

        run(gateway, tmp_path, "models", "update", model_id, "-p", "rpm=60")
        got = json_out(run(gateway, tmp_path, "models", "get", "--name", ADDED))
        assert got["model_info"]["id"] == model_id
        assert got["litellm_params"]["rpm"] == 60
    finally:
        deleted = run(gateway, tmp_path, "models", "delete", model_id)
    assert "deleted" in deleted.stdout
    ids = [m["id"] for m in json_out(run(gateway, tmp_path, "models", "list", "--format", "json"))]
    assert ADDED not in ids
    with pytest.raises(Exception):
        make_client(gateway, MASTER_KEY).chat.completions.create(model=ADDED, messages=hello())
    again = run(gateway, tmp_path, "models", "delete", model_id, check=False)
    assert again.returncode != 0
    assert "404" in again.stdout + again.stderr
