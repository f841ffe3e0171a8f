-- Plug-and-charge matching: every plug cycle of a connector is recorded and decided on its
-- own; cars are claimed with a conditional insert so a car is in one session or one
-- confirmation at most; what each car's data said about its own plug-in, for time matching.

CREATE TABLE plug_ins (
    id               bigserial PRIMARY KEY,
    charge_point_id  text NOT NULL,
    connector_id     integer NOT NULL,
    plugged_at       timestamptz NOT NULL,   -- the charger's Preparing
    ended_at         timestamptz,            -- the next Available / Finishing / Preparing
    outcome          text NOT NULL DEFAULT 'pending',
    reason           text,
    vehicle_id       bigint REFERENCES vehicles (id),
    session_id       bigint REFERENCES charging_sessions (id),
    confirm_id_tag   text,
    remote_start_at  timestamptz,
    decided_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- One open plug cycle per connector.
CREATE UNIQUE INDEX plug_ins_open_connector
    ON plug_ins (charge_point_id, connector_id) WHERE ended_at IS NULL;
CREATE INDEX plug_ins_pending ON plug_ins (outcome) WHERE outcome IN ('pending', 'confirming');

-- A car claimed by a session or a confirmation start: the primary key is the guard.
CREATE TABLE vehicle_claims (
    vehicle_id   bigint PRIMARY KEY REFERENCES vehicles (id) ON DELETE CASCADE,
    plug_in_id   bigint NOT NULL REFERENCES plug_ins (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('session', 'confirmation')),
    claimed_at   timestamptz NOT NULL DEFAULT now()
);

-- The interval in which the car's own plug-in happened (matching.py): the latest data
-- showing it unplugged, and the earliest showing it plugged since; data time of the last read.
ALTER TABLE vehicles
    ADD COLUMN unplugged_seen_at timestamptz,
    ADD COLUMN plugged_seen_at   timestamptz,
    ADD COLUMN plug_data_at      timestamptz;

ALTER TABLE charging_sessions ADD COLUMN plug_in_id bigint REFERENCES plug_ins (id);
