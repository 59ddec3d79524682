"""Helpers of test_provider_sdks.py: raw answers of the mock, SSE parsing, and validation of
an answer against an SDK's own pydantic types."""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, Optional

import pydantic

from conftest import Mock, http_json


def _unknown_fields(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, pydantic.BaseModel):
        for key in value.model_extra or {}:
            yield f"{path}.{key}"
        for name in type(value).model_fields:
            yield from _unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _unknown_fields(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unknown_fields(item, f"{path}.{key}")


def validated(schema: Any, data: Any, allowed_extra: tuple[str, ...] = ()) -> Any:
    """``data`` validated against the SDK type ``schema``, with no field the SDK does not know
    (beyond the ``allowed_extra`` paths, which are regular expressions)."""
    value = pydantic.TypeAdapter(schema).validate_python(data)
    unknown = [f for f in _unknown_fields(value, "$") if not any(re.fullmatch(a, f) for a in allowed_extra)]
    assert unknown == [], f"fields the SDK does not know: {unknown} in {json.dumps(data)}"
    return value


def sse_events(text: str) -> list[tuple[Optional[str], Any]]:
    """(event name, parsed data) of each SSE event in ``text``; ``[DONE]`` stays a string."""
    events = []
    for block in re.split(r"\r?\n\r?\n", text):
        name, data = None, []
        for line in re.split(r"\r?\n", block):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].lstrip())
        if data:
            joined = "\n".join(data)
            events.append((name, joined if joined == "[DONE]" else json.loads(joined)))
    return events


def raw_post(mock: Mock, path: str, body: Any, headers: dict[str, str]) -> Any:
    """The mock's raw answer to ``body``: what an SDK call just parsed, for schema checks
    (the echo model is deterministic up to ids)."""
    status, _, payload = http_json("POST", mock.url + path, body, headers=headers)
    assert status == 200, payload
    return payload

