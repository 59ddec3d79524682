-- liter-llm stores, PostgreSQL. Money is integer nano-USD; times are unix milliseconds (UTC).

-- Virtual keys. Only the SHA-256 of a key is stored, never the key.
CREATE TABLE api_keys (
    id              TEXT             PRIMARY KEY,
    key_hash        TEXT             NOT NULL,
    key_alias       TEXT,
    models          JSONB            NOT NULL DEFAULT '[]',
    max_budget      DOUBLE PRECISION,
    rpm_limit       BIGINT,
    tpm_limit       BIGINT,
    budget_duration TEXT,                                    -- e.g. '30d'
    expires_at      BIGINT,
    metadata        JSONB            NOT NULL DEFAULT '{}',
    created_at      BIGINT           NOT NULL,
    updated_at      BIGINT           NOT NULL,
    blocked         BOOLEAN          NOT NULL DEFAULT FALSE,
    CONSTRAINT api_keys_key_hash_unique UNIQUE (key_hash),
    CONSTRAINT api_keys_key_alias_unique UNIQUE (key_alias)
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);

-- One row per budget scope ('global', 'key:<id>', 'model:<name>', ...).
CREATE TABLE budget_scopes (
    scope          TEXT   PRIMARY KEY,
    limit_nanos    BIGINT NOT NULL,
    period         TEXT,                -- e.g. '30d'; NULL: spend never resets
    period_start   BIGINT,              -- start of the current window
    spent_nanos    BIGINT NOT NULL DEFAULT 0,
    reserved_nanos BIGINT NOT NULL DEFAULT 0
);

-- In-flight reservations. Identity ids are never reused (settle is idempotent).
CREATE TABLE reservations (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   TEXT   NOT NULL,
    owner        BIGINT NOT NULL,      -- the store handle that made it (its advisory lock key)
    amount_nanos BIGINT NOT NULL,
    scopes       TEXT   NOT NULL,      -- JSON array of scope names
    created_at   BIGINT NOT NULL
);
CREATE INDEX reservations_owner ON reservations (owner);

-- The spend ledger: one row per finished (or reconciled) request.
CREATE TABLE spend_ledger (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id    BIGINT UNIQUE,
    request_id        TEXT   NOT NULL,
    key_id            TEXT,
    key_alias         TEXT,
    model             TEXT   NOT NULL,
    deployment        TEXT   NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL,
    cost_nanos        BIGINT NOT NULL,
    status            INTEGER NOT NULL,
    started_at        BIGINT NOT NULL,
    ended_at          BIGINT NOT NULL
);
CREATE INDEX spend_ledger_started ON spend_ledger (started_at);
CREATE INDEX spend_ledger_key ON spend_ledger (key_id, started_at);
CREATE INDEX spend_ledger_alias ON spend_ledger (key_alias, started_at);
CREATE INDEX spend_ledger_model ON spend_ledger (model, started_at);
