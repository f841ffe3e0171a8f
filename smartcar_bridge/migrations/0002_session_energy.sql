-- The charger's energy register during a session, as the bridge saw it in MeterValues
-- events (the bridge keeps its own record rather than reading the core's tables).
CREATE TABLE session_energy_samples (
    session_id   bigint NOT NULL REFERENCES charging_sessions (id) ON DELETE CASCADE,
    sampled_at   timestamptz NOT NULL,
    energy_wh    double precision NOT NULL
);
CREATE INDEX session_energy_samples_session ON session_energy_samples (session_id, sampled_at);

-- A car is in at most one open session: a second claim on it fails in the database.
CREATE UNIQUE INDEX charging_sessions_open_vehicle
    ON charging_sessions (vehicle_id) WHERE ended_at IS NULL;

-- battery/grid can exceed 99 when a charger reported almost nothing: keep it storable.
ALTER TABLE charging_sessions ALTER COLUMN efficiency TYPE numeric(12, 4);
