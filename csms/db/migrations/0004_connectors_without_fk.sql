-- Connector statuses are written by their own batch writer, concurrently with the writer
-- that registers first-contact chargers. A foreign key made the two wait on each other's
-- uncommitted rows and deadlock in a 10,000-charger reconnect storm (measured). Deleting a
-- charger deletes its connectors explicitly instead of by cascade.
ALTER TABLE connectors DROP CONSTRAINT IF EXISTS connectors_charge_point_id_fkey;
