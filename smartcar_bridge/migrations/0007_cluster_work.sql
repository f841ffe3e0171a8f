-- Cluster mode, wired: a lease names a kind of work (a session, or a plug-in still being
-- decided) so one node at a time works on either; per-vehicle Retry-After holds seen by
-- any node hold that vehicle on every node.
ALTER TABLE bridge_session_leases RENAME TO bridge_leases;
ALTER INDEX bridge_session_leases_expiry RENAME TO bridge_leases_expiry;
ALTER TABLE bridge_leases RENAME COLUMN session_id TO work_id;
ALTER TABLE bridge_leases ADD COLUMN kind text NOT NULL DEFAULT 'session';
ALTER TABLE bridge_leases ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE bridge_leases DROP CONSTRAINT bridge_session_leases_pkey;
ALTER TABLE bridge_leases ADD PRIMARY KEY (kind, work_id);
CREATE INDEX bridge_leases_node ON bridge_leases (node_id);

CREATE TABLE bridge_vehicle_holds (
    vehicle_id  text PRIMARY KEY,  -- Smartcar's vehicle id, as the client sees it
    until       timestamptz NOT NULL,
    reason      text NOT NULL
);
