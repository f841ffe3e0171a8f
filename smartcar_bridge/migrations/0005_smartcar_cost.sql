-- Issue 16: what the bridge knows without calling Smartcar. A car whose webhooks arrive is
-- watched by them (no reads to match it); where and when its position was last known
-- decides whether a polling car can be at a charger at all.
ALTER TABLE vehicles ADD COLUMN webhook_seen_at timestamptz;
ALTER TABLE vehicles ADD COLUMN location_at timestamptz;
