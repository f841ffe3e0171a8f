-- Smartcar Vehicles API v3 (smartcar-api.md §14): the Connect redirect's user_id is what
-- every v3 call sends as sc-user-id; links made under v3 hold no per-vehicle tokens.
ALTER TABLE smartcar_links ADD COLUMN sc_user_id text;
ALTER TABLE smartcar_links ALTER COLUMN access_token_enc DROP NOT NULL;
ALTER TABLE smartcar_links ALTER COLUMN refresh_token_enc DROP NOT NULL;
ALTER TABLE smartcar_links ALTER COLUMN access_expires_at DROP NOT NULL;
ALTER TABLE smartcar_links ALTER COLUMN refresh_expires_at DROP NOT NULL;

-- The application token (client credentials, one hour), shared by every process.
CREATE TABLE smartcar_app_tokens (
    cache_key   text PRIMARY KEY,
    token_enc   bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    issued_at   timestamptz NOT NULL
);
