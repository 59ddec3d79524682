-- The files API's metadata. The bytes live in the [files] backend at object_path.
-- Ids sort by creation time, so lists page by id.
CREATE TABLE files (
    id          TEXT    PRIMARY KEY,
    owner       TEXT,                   -- the uploading virtual key's id; NULL: the master key
    filename    TEXT    NOT NULL,
    bytes       INTEGER NOT NULL,
    purpose     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,       -- unix milliseconds (UTC)
    object_path TEXT    NOT NULL
);
CREATE INDEX files_owner ON files (owner, id);

-- A gateway file's copy at a provider, per deployment, for the batch and fine-tuning
-- APIs (nothing writes it yet). Rows go with their file.
CREATE TABLE file_provider_ids (
    file_id          TEXT    NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    deployment       TEXT    NOT NULL,  -- the deployment's provider_model
    provider_file_id TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (file_id, deployment)
);
