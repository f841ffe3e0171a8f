-- Core OCPP 1.6 state: charge points, connectors, id tags, transactions, meter values.

CREATE TABLE charge_points (
    id                        text PRIMARY KEY,
    registration_status       text NOT NULL DEFAULT 'Accepted'
                              CHECK (registration_status IN ('Accepted', 'Pending', 'Rejected')),
    vendor                    text,
    model                     text,
    serial_number             text,
    charge_box_serial_number  text,
    firmware_version          text,
    iccid                     text,
    imsi                      text,
    meter_type                text,
    meter_serial_number       text,
    boot_payload              jsonb,
    first_seen_at             timestamptz NOT NULL DEFAULT now(),
    last_boot_at              timestamptz,
    last_seen_at              timestamptz,
    connected                 boolean NOT NULL DEFAULT false,
    -- Which central system process holds the socket, so a command can be routed to it.
    connected_node            text,
    firmware_status           text,
    firmware_status_at        timestamptz,
    diagnostics_status        text,
    diagnostics_status_at     timestamptz
);

CREATE TABLE connectors (
    charge_point_id    text NOT NULL REFERENCES charge_points (id) ON DELETE CASCADE,
    connector_id       integer NOT NULL CHECK (connector_id >= 0),
    status             text NOT NULL,
    error_code         text NOT NULL,
    info               text,
    vendor_id          text,
    vendor_error_code  text,
    reported_at        timestamptz,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, connector_id)
);

CREATE TABLE status_history (
    id                 bigserial PRIMARY KEY,
    charge_point_id    text NOT NULL,
    connector_id       integer NOT NULL,
    status             text NOT NULL,
    error_code         text NOT NULL,
    info               text,
    vendor_id          text,
    vendor_error_code  text,
    reported_at        timestamptz,
    received_at        timestamptz NOT NULL,
    clock_suspect      boolean NOT NULL DEFAULT false,
    extra              jsonb
);
CREATE INDEX status_history_cp_idx ON status_history (charge_point_id, connector_id, received_at);

CREATE TABLE id_tags (
    id_tag         text PRIMARY KEY,
    -- Canonical form (upper case, no separators) so a hex UID matches however it is written.
    id_tag_key     text NOT NULL UNIQUE,
    status         text NOT NULL DEFAULT 'Accepted'
                   CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid', 'ConcurrentTx')),
    expiry_date    timestamptz,
    parent_id_tag  text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- OCPP 1.6 transactionId is an integer: keep ids within int4.
CREATE SEQUENCE transaction_id_seq AS integer START 1;

CREATE TABLE transactions (
    id                  integer PRIMARY KEY DEFAULT nextval('transaction_id_seq'),
    charge_point_id     text NOT NULL,
    connector_id        integer NOT NULL,
    id_tag              text NOT NULL,
    id_tag_status       text NOT NULL,
    reservation_id      integer,
    meter_start_wh      bigint NOT NULL,
    start_timestamp     timestamptz NOT NULL,
    start_received_at   timestamptz NOT NULL,
    meter_stop_wh       bigint,
    stop_timestamp      timestamptz,
    stop_received_at    timestamptz,
    stop_reason         text,
    stop_id_tag         text,
    -- Meter went backwards, reset, or stop < start: stored as reported, never a negative energy.
    meter_anomaly       boolean NOT NULL DEFAULT false,
    clock_suspect       boolean NOT NULL DEFAULT false,
    start_extra         jsonb,
    stop_extra          jsonb,
    -- A retransmitted StartTransaction (answer lost) must map to the same id.
    CONSTRAINT transactions_start_identity
        UNIQUE (charge_point_id, connector_id, id_tag, meter_start_wh, start_timestamp)
);
ALTER SEQUENCE transaction_id_seq OWNED BY transactions.id;
CREATE INDEX transactions_active_idx ON transactions (charge_point_id, connector_id)
    WHERE stop_received_at IS NULL;

-- StopTransaction for an id we never issued (0, -1, another central system's): kept, never refused.
CREATE TABLE orphan_stops (
    id                 bigserial PRIMARY KEY,
    charge_point_id    text NOT NULL,
    transaction_id     integer NOT NULL,
    id_tag             text,
    meter_stop_wh      bigint,
    stop_timestamp     timestamptz,
    stop_reason        text,
    received_at        timestamptz NOT NULL,
    payload            jsonb NOT NULL
);

-- One row per sampled value. No foreign key on transaction_id: chargers report ids
-- from offline starts before (or without) the StartTransaction reaching us.
CREATE TABLE meter_values (
    charge_point_id  text NOT NULL,
    connector_id     integer NOT NULL,
    transaction_id   integer,
    sampled_at       timestamptz NOT NULL,
    received_at      timestamptz NOT NULL,
    measurand        text NOT NULL,
    phase            text,
    location         text,
    unit             text,
    context          text NOT NULL,
    format           text NOT NULL,
    -- Normalised to Wh / W / A; null when the value is not numeric (SignedData).
    value            double precision,
    raw_value        text NOT NULL,
    raw_unit         text,
    source           text NOT NULL,
    clock_suspect    boolean NOT NULL DEFAULT false,
    extra            jsonb
);
CREATE INDEX meter_values_tx_idx ON meter_values (transaction_id) WHERE transaction_id IS NOT NULL;
CREATE INDEX meter_values_cp_idx ON meter_values (charge_point_id, sampled_at);

CREATE TABLE data_transfers (
    id                bigserial PRIMARY KEY,
    charge_point_id   text NOT NULL,
    direction         text NOT NULL CHECK (direction IN ('in', 'out')),
    vendor_id         text NOT NULL,
    message_id        text,
    data              text,
    status            text NOT NULL,
    response_data     text,
    received_at       timestamptz NOT NULL
);

-- Firmware and diagnostics status notifications, kept as a history per charger.
CREATE TABLE charge_point_notifications (
    id                bigserial PRIMARY KEY,
    charge_point_id   text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('firmware', 'diagnostics')),
    status            text NOT NULL,
    received_at       timestamptz NOT NULL
);

-- Every central-system-initiated command with its outcome.
CREATE TABLE commands (
    id                bigserial PRIMARY KEY,
    charge_point_id   text NOT NULL,
    action            text NOT NULL,
    payload           jsonb NOT NULL,
    outcome           text,
    response          jsonb,
    error             text,
    requested_at      timestamptz NOT NULL,
    completed_at      timestamptz
);
CREATE INDEX commands_cp_idx ON commands (charge_point_id, requested_at);
