-- Operator HTTP API: bearer tokens, Local Authorization List versions, listing indexes.

CREATE TABLE operator_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- SHA-256 of the token; the token itself is shown once and never stored.
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Written at most once a minute per token, not per request.
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
-- A name names one live token; a revoked name can be reused.
CREATE UNIQUE INDEX operator_tokens_live_name ON operator_tokens (name) WHERE revoked_at IS NULL;

-- OCPP 1.6 listVersion is an integer that must grow with every update we send.
CREATE SEQUENCE local_list_version_seq AS integer START 1;

-- The last Local Authorization List sent to each charger, and its answer.
CREATE TABLE local_list_pushes (
    charge_point_id  text PRIMARY KEY,
    list_version     integer NOT NULL,
    entries          integer NOT NULL,
    status           text NOT NULL,
    sent_at          timestamptz NOT NULL
);

-- Keyset pagination: newest first by (start_timestamp, id).
CREATE INDEX transactions_start_idx ON transactions (start_timestamp DESC, id DESC);
CREATE INDEX transactions_id_tag_idx ON transactions (id_tag);
-- One charger's status history, newest first, paged by id.
CREATE INDEX status_history_cp_id_idx ON status_history (charge_point_id, id);
