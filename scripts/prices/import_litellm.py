#!/usr/bin/env python3
"""Writes crates/liter-llm/src/pricing/litellm_prices.json from LiteLLM's price file.

LiteLLM (MIT licence, crates/liter-llm/src/pricing/LITELLM-LICENSE) ships
``model_prices_and_context_window.json`` inside its PyPI package. This script takes it
from the pinned release below (``pip download``, no install) or from ``--file``, keeps
the entries of the providers this gateway routes to, keys each one as ``provider/model``
(the way ``provider_model`` is written in our config), keeps only the fields the
gateway reads, and marks every entry with its source and date. The gateway embeds the
result beneath its hand-written ``prices.json``, which wins where both price a model.

    python3 scripts/prices/import_litellm.py            # the pinned release
    python3 scripts/prices/import_litellm.py --file F   # a copy of the file
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

LITELLM_VERSION = "1.110.2"
# The day this release's file was taken: every entry carries it as `updated`.
TAKEN = "2026-12-04"
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/liter-llm/src/pricing/litellm_prices.json"

# LiteLLM's `litellm_provider` values -> our provider prefixes (the providers we route to).
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai-language-models": "vertex_ai",
    "vertex_ai-anthropic_models": "vertex_ai",
    "vertex_ai-embedding-models": "vertex_ai",
    "vertex_ai-text-models": "vertex_ai",
    "vertex_ai": "vertex_ai",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "together_ai": "together_ai",
    "fireworks_ai": "fireworks_ai",
    "fireworks_ai-embedding-models": "fireworks_ai",
    "openrouter": "openrouter",
    "xai": "xai",
    "perplexity": "perplexity",
}
MODES = {"chat", "completion", "responses", "embedding"}
FIELDS = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
    "max_input_tokens",
    "max_output_tokens",
]


def download() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary", ":all:", "--dest", tmp, f"litellm=={LITELLM_VERSION}"],
            check=True,
        )
        wheel = next(Path(tmp).glob("litellm-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            return json.loads(z.read("litellm/model_prices_and_context_window_backup.json"))


def our_key(key: str, prefix: str) -> str:
    """`provider/model`: LiteLLM's key without its own prefix, under ours."""
    for head in (prefix, "vertex_ai", "bedrock/converse", "bedrock", "cohere_chat", "text-completion-openai"):
        if key.startswith(head + "/"):
            key = key[len(head) + 1:]
            break
    return f"{prefix}/{key}"


def sane(e: dict) -> bool:
    """What the table's tests hold every entry to: priced (an embedding model's output
    free), under $1000 per million tokens, cache reads cheaper and writes dearer than
    a plain input token, limits of 512 tokens or more. Fields that break it are dropped;
    an entry whose prices break it is left out."""
    embedding = e["mode"] == "embedding"
    inp, out = e["input_cost_per_token"], e.get("output_cost_per_token", 0.0)
    if not (0 < inp < 1e-3) or not (0 <= out < 1e-3) or (out == 0) != embedding:
        return False
    if embedding:
        e["output_cost_per_token"] = 0.0
    read = e.get("cache_read_input_token_cost")
    if read is not None and not (0 < read <= inp):
        del e["cache_read_input_token_cost"]
    write = e.get("cache_creation_input_token_cost")
    if write is not None and write < inp:
        del e["cache_creation_input_token_cost"]
    for audio in ("input_cost_per_audio_token", "output_cost_per_audio_token"):
        if audio in e and not (0 < e[audio] < 1e-3):
            del e[audio]
    for limit in ("max_input_tokens", "max_output_tokens"):
        if limit in e and e[limit] < 512:
            del e[limit]
    return True


def convert(source: dict) -> dict:
    out: dict[str, dict] = {}
    for key, entry in sorted(source.items()):
        if key == "sample_spec" or not isinstance(entry, dict):
            continue
        prefix = PROVIDERS.get(entry.get("litellm_provider"))
        if prefix is None or entry.get("mode", "chat") not in MODES:
            continue
        # Bedrock: regional keys (`bedrock/us-east-1/...`) and commitment tiers are
        # not how a deployment names its model.
        if prefix == "bedrock" and key.count("/") > 1:
            continue
        if not isinstance(entry.get("input_cost_per_token"), (int, float)):
            continue
        if not isinstance(entry.get("output_cost_per_token"), (int, float)):
            entry = dict(entry, output_cost_per_token=0.0)
        kept = {"litellm_provider": prefix, "mode": entry.get("mode", "chat")}
        for field in FIELDS:
            value = entry.get(field)
            if isinstance(value, (int, float)) and value >= 0:
                kept[field] = int(value) if field.startswith("max_") else value
        if not sane(kept):
            continue
        kept["source"] = f"LiteLLM {LITELLM_VERSION} model_prices_and_context_window.json ({key})"
        kept["updated"] = TAKEN
        out.setdefault(our_key(key, prefix), kept)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, help="a copy of model_prices_and_context_window.json")
    args = parser.parse_args()
    source = json.loads(args.file.read_text()) if args.file else download()
    table = convert(source)
    OUT.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(table)} models from LiteLLM {LITELLM_VERSION}")


if __name__ == "__main__":
    main()
