-- The ledger row's id becomes its reservation's id (the rowid), which drops the
-- separate unique index, and only the time index stays: every request writes one row,
-- and each index is one more B-tree insert. Spend queries filter by time with it; by
-- key, alias or model they scan (a key filter matches its id or its alias, which one
-- column's index could not serve anyway).
CREATE TABLE spend_ledger_v2 (
    id                INTEGER PRIMARY KEY,  -- the reservation id
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
-- Rows without a reservation (none are written since version 1's reconcile) keep a
-- distinct negative id.
INSERT INTO spend_ledger_v2
SELECT COALESCE(reservation_id, -id), request_id, key_id, key_alias, model, deployment,
       prompt_tokens, completion_tokens, cached_tokens, cost_nanos, status, started_at,
       ended_at
FROM spend_ledger;
DROP TABLE spend_ledger;
ALTER TABLE spend_ledger_v2 RENAME TO spend_ledger;
CREATE INDEX spend_ledger_started ON spend_ledger (started_at);
