"""GET /openapi.json: the gateway's own document passes an independent OpenAPI 3.1
validator (openapi-spec-validator), needs no key, and names the routes the SDK uses."""

from __future__ import annotations

from openapi_spec_validator import OpenAPIV31SpecValidator

from conftest import http_json


def test_the_document_is_valid_openapi_3_1(gateway):
    status, headers, doc = http_json("GET", f"{gateway.url}/openapi.json")
    assert status == 200, doc
    assert headers["content-type"] == "application/json"
    assert doc["openapi"].startswith("3.1.")
    errors = [str(e) for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors == []
    for path in ("/v1/chat/completions", "/chat/completions", "/v1/embeddings",
                 "/v1/models", "/v1/files", "/key/generate", "/openapi.json"):
        assert path in doc["paths"], path
