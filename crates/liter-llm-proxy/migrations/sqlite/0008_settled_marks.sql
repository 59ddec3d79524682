-- With the ledger rows off (`general.disable_spend_logs`), the id of each settled
-- reservation, committed in the transaction that commits its spend: what start-up after
-- a crash reads (as it reads the ledger rows otherwise) to tell a journalled reservation
-- that was settled from one in flight. A mark is deleted once its reservation's journal
-- segment is (the newest mark stays, so ids are never handed out twice).
CREATE TABLE settled_marks (
    id INTEGER PRIMARY KEY NOT NULL
);
