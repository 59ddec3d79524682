"""The files API through the OpenAI SDK: client.files.create / list / retrieve /
content / delete, ownership between the master key and a virtual key, and errors."""

from __future__ import annotations

import io

import openai
import pytest


def test_create_list_retrieve_content_delete(client):
    data = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions"}\n' * 50
    created = client.files.create(file=("batch.jsonl", io.BytesIO(data)), purpose="batch")
    assert created.id.startswith("file-")
    assert created.object == "file"
    assert created.bytes == len(data)
    assert created.filename == "batch.jsonl"
    assert created.purpose == "batch"
    assert created.status == "processed"

    other = client.files.create(file=("notes.txt", b"notes"), purpose="user_data")
    # Pagination with the SDK's cursor (`after`): one file per page, both reached.
    seen = [f.id for f in client.files.list(limit=1, order="asc")]
    assert created.id in seen and other.id in seen
    assert seen.index(created.id) < seen.index(other.id)
    batch_only = [f.id for f in client.files.list(purpose="batch")]
    assert created.id in batch_only and other.id not in batch_only

    fetched = client.files.retrieve(created.id)
    assert fetched.id == created.id and fetched.bytes == len(data)
    assert client.files.content(created.id).content == data

    for f in (created, other):
        deleted = client.files.delete(f.id)
        assert deleted.id == f.id and deleted.deleted is True
    with pytest.raises(openai.NotFoundError) as info:
        client.files.retrieve(created.id)
    assert info.value.status_code == 404


def test_a_virtual_key_sees_only_its_own_files(client, vclient):
    mine = vclient.files.create(file=("mine.jsonl", b"{}\n"), purpose="batch")
    master = client.files.create(file=("master.jsonl", b"{}\n"), purpose="batch")
    try:
        assert [f.id for f in vclient.files.list()] == [mine.id]
        with pytest.raises(openai.NotFoundError):
            vclient.files.retrieve(master.id)
        with pytest.raises(openai.NotFoundError):
            vclient.files.delete(master.id)
        # The master key sees every file.
        ids = [f.id for f in client.files.list()]
        assert mine.id in ids and master.id in ids
    finally:
        client.files.delete(mine.id)
        client.files.delete(master.id)


def test_bad_purpose_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("a.txt", b"x"), purpose="homework")  # type: ignore[arg-type]
    assert info.value.status_code == 400
    assert info.value.param == "purpose"
