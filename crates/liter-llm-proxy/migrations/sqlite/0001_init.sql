-- liter-llm stores, SQLite. Money is integer nano-USD; times are unix milliseconds (UTC).

-- Virtual keys. Only the SHA-256 of a key is stored, never the key.
CREATE TABLE api_keys (
    id              TEXT    PRIMARY KEY,
    key_hash        TEXT    NOT NULL,
    key_alias       TEXT,
    models          TEXT    NOT NULL DEFAULT '[]',  -- JSON array
    max_budget      REAL,
    rpm_limit       INTEGER,
    tpm_limit       INTEGER,
    budget_duration TEXT,                           -- e.g. '30d'
    expires_at      INTEGER,
    metadata        TEXT    NOT NULL DEFAULT '{}',  -- JSON
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    blocked         INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT api_keys_key_hash_unique UNIQUE (key_hash),
    CONSTRAINT api_keys_key_alias_unique UNIQUE (key_alias)
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);

-- One row per budget scope ('global', 'key:<id>', 'model:<name>', ...).
CREATE TABLE budget_scopes (
    scope          TEXT    PRIMARY KEY,
    limit_nanos    INTEGER NOT NULL,
    period         TEXT,                -- e.g. '30d'; NULL: spend never resets
    period_start   INTEGER,             -- start of the current window
    spent_nanos    INTEGER NOT NULL DEFAULT 0,
    reserved_nanos INTEGER NOT NULL DEFAULT 0
);

-- In-flight reservations. AUTOINCREMENT: ids are never reused (settle is idempotent).
CREATE TABLE reservations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT    NOT NULL,
    owner        INTEGER NOT NULL,      -- the store handle that made it
    amount_nanos INTEGER NOT NULL,
    scopes       TEXT    NOT NULL,      -- JSON array of scope names
    created_at   INTEGER NOT NULL
);
CREATE INDEX reservations_owner ON reservations (owner);

-- The spend ledger: one row per finished (or reconciled) request.
CREATE TABLE spend_ledger (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    reservation_id    INTEGER UNIQUE,
    request_id        TEXT    NOT NULL,
    key_id            TEXT,
    key_alias         TEXT,
    model             TEXT    NOT NULL,
    deployment        TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    started_at        INTEGER NOT NULL,
    ended_at          INTEGER NOT NULL
);
CREATE INDEX spend_ledger_started ON spend_ledger (started_at);
CREATE INDEX spend_ledger_key ON spend_ledger (key_id, started_at);
CREATE INDEX spend_ledger_alias ON spend_ledger (key_alias, started_at);
CREATE INDEX spend_ledger_model ON spend_ledger (model, started_at);
