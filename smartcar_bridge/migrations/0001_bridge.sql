-- Smartcar bridge: accounts, Smartcar links (encrypted tokens), vehicles, charging sessions.

CREATE TABLE accounts (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL,
    payment_status   text NOT NULL DEFAULT 'none'
                     CHECK (payment_status IN ('valid', 'suspended', 'none')),
    -- Money is exact: price per kWh in the account's currency.
    tariff_per_kwh   numeric(12, 4) NOT NULL DEFAULT 0 CHECK (tariff_per_kwh >= 0),
    currency         text NOT NULL DEFAULT 'EUR',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One Smartcar Connect authorisation (one user's token pair) for an account.
CREATE TABLE smartcar_links (
    id                  bigserial PRIMARY KEY,
    account_id          bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    smartcar_user_id    text NOT NULL,
    -- Encrypted at rest with a key derived from CSMS_SECRET_KEY (Fernet).
    access_token_enc    bytea NOT NULL,
    refresh_token_enc   bytea NOT NULL,
    access_expires_at   timestamptz NOT NULL,
    refresh_expires_at  timestamptz NOT NULL,
    scopes              text[] NOT NULL DEFAULT '{}',
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'reauth_required', 'revoked')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, smartcar_user_id)
);

CREATE TABLE vehicles (
    id                    bigserial PRIMARY KEY,
    smartcar_vehicle_id   text NOT NULL,
    link_id               bigint NOT NULL REFERENCES smartcar_links (id) ON DELETE CASCADE,
    account_id            bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    vin                   text NOT NULL,
    make                  text,
    model                 text,
    year                  integer,
    -- Stable OCPP idTag (<= 20 chars) so the charger's own records carry the vehicle.
    id_tag                text NOT NULL UNIQUE CHECK (length(id_tag) <= 20),
    battery_capacity_wh   integer,
    active                boolean NOT NULL DEFAULT true,
    target_soc_percent    integer NOT NULL DEFAULT 80 CHECK (target_soc_percent BETWEEN 1 AND 100),
    max_energy_wh         integer CHECK (max_energy_wh > 0),
    departure_at          timestamptz,
    latitude              double precision,
    longitude             double precision,
    last_plugged_in       boolean,
    plugged_in_changed_at timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- A VIN belongs to at most one active account.
CREATE UNIQUE INDEX vehicles_active_vin ON vehicles (vin) WHERE active;
CREATE UNIQUE INDEX vehicles_active_smartcar_id ON vehicles (smartcar_vehicle_id) WHERE active;

-- Charger locations, for matching a plug-in to a car parked next to it.
CREATE TABLE charger_locations (
    charge_point_id  text PRIMARY KEY,
    latitude         double precision NOT NULL,
    longitude        double precision NOT NULL
);

CREATE TABLE charging_sessions (
    id                    bigserial PRIMARY KEY,
    charge_point_id       text NOT NULL,
    connector_id          integer NOT NULL,
    vehicle_id            bigint NOT NULL REFERENCES vehicles (id),
    account_id            bigint NOT NULL REFERENCES accounts (id),
    vin                   text NOT NULL,
    id_tag                text NOT NULL,
    transaction_id        integer UNIQUE,
    state                 text NOT NULL,
    target_soc_percent    integer NOT NULL,
    max_energy_wh         integer,
    departure_at          timestamptz,
    start_soc_percent     double precision,
    last_soc_percent      double precision,
    end_soc_percent       double precision,
    battery_capacity_wh   integer,
    meter_start_wh        bigint,
    meter_stop_wh         bigint,
    stop_reason           text,
    grid_energy_wh        bigint,
    battery_energy_wh     bigint,
    efficiency            numeric(6, 4),
    reconciliation_flags  text[] NOT NULL DEFAULT '{}',
    bill_energy_wh        bigint,
    bill_basis            text CHECK (bill_basis IN ('charger', 'battery')),
    bill_amount           numeric(12, 2),
    tariff_per_kwh        numeric(12, 4),
    currency              text,
    attempts              integer NOT NULL DEFAULT 0,
    next_action_at        timestamptz,
    last_error            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    ended_at              timestamptz
);
CREATE INDEX charging_sessions_open ON charging_sessions (state) WHERE ended_at IS NULL;
CREATE UNIQUE INDEX charging_sessions_open_connector
    ON charging_sessions (charge_point_id, connector_id) WHERE ended_at IS NULL;

CREATE TABLE soc_samples (
    id             bigserial PRIMARY KEY,
    session_id     bigint NOT NULL REFERENCES charging_sessions (id) ON DELETE CASCADE,
    sampled_at     timestamptz NOT NULL,
    soc_percent    double precision NOT NULL,
    charge_state   text,
    source         text NOT NULL CHECK (source IN ('smartcar', 'charger', 'webhook')),
    data_age       timestamptz
);
CREATE INDEX soc_samples_session ON soc_samples (session_id, sampled_at);

-- Webhook deliveries are at-least-once: remember event ids to process each once.
CREATE TABLE smartcar_webhook_events (
    event_id     text PRIMARY KEY,
    event_type   text NOT NULL,
    vehicle_id   text,
    received_at  timestamptz NOT NULL DEFAULT now()
);
