-- Requests answered from the gateway's response cache: no provider call, cost 0.
ALTER TABLE spend_ledger ADD COLUMN cache_hit BOOLEAN NOT NULL DEFAULT FALSE;
