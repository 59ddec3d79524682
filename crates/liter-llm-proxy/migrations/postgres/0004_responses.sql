-- The Responses API's stored responses (`store`, `previous_response_id`). Each row
-- holds the response as the client got it and the conversation's input items up to
-- it (JSON texts); only its owner (a key's budget scope name, or 'master') reads it.
CREATE TABLE responses (
    id          TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,       -- unix milliseconds (UTC)
    response    TEXT    NOT NULL,
    input_items TEXT    NOT NULL
);
CREATE INDEX responses_owner ON responses (owner, created_at);
