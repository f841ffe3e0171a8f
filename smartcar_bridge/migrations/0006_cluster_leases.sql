-- Cluster mode: one node at a time works on a plug-and-charge session (a lease that the
-- holder renews and another node takes once it has expired), and the Smartcar
-- application's rate limit as one token bucket shared by every node.
CREATE TABLE bridge_session_leases (
    session_id  bigint PRIMARY KEY,
    node_id     text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX bridge_session_leases_expiry ON bridge_session_leases (expires_at);

CREATE TABLE bridge_rate_buckets (
    name        text PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);
