-- Durable idempotency: a MeterValues, StatusNotification or orphan StopTransaction that a
-- charger resends because our answer was lost (a crash, a reconnect, another node) is
-- recognised by a unique key in the database and written with ON CONFLICT DO NOTHING.
-- The in-memory check of recent payloads stays, as a shortcut only.

-- A sampled value is identified by what the charger measured and when: charger,
-- connector, timestamp, measurand, phase, location, context, and also format, unit and
-- the value itself (as an md5, since a signed value can outgrow an index entry), because
-- real chargers send one reading twice in one message (a Raw and a SignedData value, or
-- Wh and kWh), and those are not duplicates. The transaction is not part of the key: one
-- connector at one moment is in one transaction anyway, and a MeterValues without
-- transactionId is attributed to the connector's open transaction at the time it
-- arrives, which a resend after the stop would change. A timestamp from a charger whose
-- clock is not set (clock_suspect) identifies nothing: such rows add their receive time
-- to the key, so they are kept as received (as before this migration).
DELETE FROM meter_values WHERE ctid IN (
    SELECT ctid FROM (
        SELECT ctid, row_number() OVER (
            PARTITION BY charge_point_id, sampled_at, connector_id, measurand, phase,
                         location, context, format, unit, raw_value
            ORDER BY received_at, ctid) AS n
        FROM meter_values WHERE NOT clock_suspect) AS ranked
    WHERE n > 1);
-- Leads with (charge_point_id, sampled_at), so it replaces that plain index: one index
-- more to maintain per row would cost the meter value path (bench/meter_values.py).
CREATE UNIQUE INDEX meter_values_sample_key ON meter_values (
    charge_point_id, sampled_at, connector_id, measurand, phase, location, context, format,
    unit, (md5(raw_value)::uuid),
    (CASE WHEN clock_suspect THEN received_at END)
) NULLS NOT DISTINCT;
DROP INDEX IF EXISTS meter_values_cp_idx;

-- A status report is identified by connector, time reported, status and error code; one
-- without a trustworthy timestamp is kept as received.
DELETE FROM status_history WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY charge_point_id, connector_id, reported_at, status, error_code
            ORDER BY id) AS n
        FROM status_history WHERE reported_at IS NOT NULL AND NOT clock_suspect) AS ranked
    WHERE n > 1);
CREATE UNIQUE INDEX status_history_report_key ON status_history (
    charge_point_id, connector_id, reported_at, status, error_code,
    (CASE WHEN clock_suspect OR reported_at IS NULL THEN received_at END)
) NULLS NOT DISTINCT;

-- A StopTransaction for an id we never issued, resent: stored once.
DELETE FROM orphan_stops WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY charge_point_id, transaction_id, stop_timestamp, meter_stop_wh
            ORDER BY id) AS n
        FROM orphan_stops) AS ranked
    WHERE n > 1);
CREATE UNIQUE INDEX orphan_stops_stop_key ON orphan_stops (
    charge_point_id, transaction_id, stop_timestamp, meter_stop_wh
) NULLS NOT DISTINCT;
