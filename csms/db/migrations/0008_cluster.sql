-- Cluster mode (csms/cluster): which node holds each charger, fenced by an epoch that
-- every new connection bumps, and which nodes are alive (heartbeats on the database clock).
CREATE TABLE charger_ownership (
    charge_point_id text PRIMARY KEY,
    epoch           bigint NOT NULL,
    node_id         text,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX charger_ownership_node ON charger_ownership (node_id) WHERE node_id IS NOT NULL;

CREATE TABLE cluster_nodes (
    node_id      text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX charge_points_connected_node ON charge_points (connected_node)
    WHERE connected_node IS NOT NULL;
