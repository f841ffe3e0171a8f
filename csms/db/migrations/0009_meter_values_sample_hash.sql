-- The sampled-value key of 0006 as a compact one: charger, timestamp and one bigint, a
-- hash of everything else that identifies the value (connector, measurand, phase,
-- location, context, format, unit, raw value). The wide key of text columns and an md5
-- expression cost about half of PostgreSQL's time per stored value (bench/meter_values.py);
-- this one is computed by the writer (csms/db/meter_values.py, sample_hash) and compared
-- as an integer. A collision could only join two values of one charger with the same
-- timestamp (a few dozen at most): at 64 bits, about 1e-16 per reading.
-- The hash: the first 8 bytes of md5 over the fields joined by U+001F (U+001E for a
-- missing one), as a signed big-endian integer; the same here and in Python.
ALTER TABLE meter_values ADD COLUMN sample_hash bigint;
UPDATE meter_values SET sample_hash = ('x' || left(md5(
    connector_id::text || E'\x1f' || measurand || E'\x1f' || coalesce(phase, E'\x1e')
    || E'\x1f' || coalesce(location, E'\x1e') || E'\x1f' || context || E'\x1f' || format
    || E'\x1f' || coalesce(unit, E'\x1e') || E'\x1f' || raw_value), 16))::bit(64)::bigint;
ALTER TABLE meter_values ALTER COLUMN sample_hash SET NOT NULL;
DROP INDEX meter_values_sample_key;
-- Still leads with (charge_point_id, sampled_at): it serves a charger's readings by time.
CREATE UNIQUE INDEX meter_values_sample_key ON meter_values (
    charge_point_id, sampled_at, sample_hash, (CASE WHEN clock_suspect THEN received_at END)
) NULLS NOT DISTINCT;
