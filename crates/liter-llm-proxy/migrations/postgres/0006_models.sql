-- The model admin API's models (`/model/new`, `/model/update`, `/model/delete`):
-- served after the config file's, on every gateway sharing the database. `body` is
-- the model as LiteLLM's API takes it (JSON: model_name, litellm_params, model_info),
-- its `litellm_params` values as given (write `os.environ/NAME` for a key to keep it
-- out of the database).
CREATE TABLE models (
    id          TEXT    PRIMARY KEY,
    model_name  TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,       -- unix milliseconds (UTC)
    updated_at  BIGINT  NOT NULL
);
