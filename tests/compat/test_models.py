"""GET /v1/models and /v1/models/{id} through the SDK."""

from __future__ import annotations

import openai
import pytest

from conftest import ALIAS_PATTERNS, MODEL_NAMES, VIRTUAL_KEY_MODELS


def test_list_has_every_configured_name(client, mock):
    models = client.models.list()
    ids = [m.id for m in models]
    # [[models]] names in config order (each pool once), then the [[aliases]] patterns
    assert ids == MODEL_NAMES + ALIAS_PATTERNS
    for m in models.data:
        assert m.object == "model"
        assert isinstance(m.created, int)
        assert isinstance(m.owned_by, str) and m.owned_by
    assert mock.requests() == [], "listing models needs no upstream call"


def test_list_is_filtered_for_a_virtual_key(vclient):
    # alias patterns are filtered too: the key may not use "anthropic/*"
    assert [m.id for m in vclient.models.list()] == VIRTUAL_KEY_MODELS


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_retrieve(client, name):
    model = client.models.retrieve(name)
    assert model.id == name
    assert model.object == "model"


def test_retrieve_unknown_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"


def test_retrieve_disallowed_for_a_virtual_key(vclient):
    assert vclient.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.PermissionDeniedError) as info:
        vclient.models.retrieve("other")
    assert info.value.status_code == 403
