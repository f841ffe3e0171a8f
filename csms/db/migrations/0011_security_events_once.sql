-- A SecurityEventNotification is one the charger must deliver (the Security Whitepaper has it
-- queued while offline and resent until answered), so a resend after a lost answer is the
-- normal case. An event is identified by charger, type, the charger's timestamp and its
-- techInfo (as an md5: free text of any length); one whose timestamp comes from an unset
-- clock identifies nothing and adds its receive time to the key, so it is kept as received.
ALTER TABLE security_events ADD COLUMN clock_suspect boolean NOT NULL DEFAULT false;
DELETE FROM security_events WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY charge_point_id, type, reported_at, md5(coalesce(tech_info, ''))
            ORDER BY id) AS n
        FROM security_events WHERE reported_at IS NOT NULL) AS ranked
    WHERE n > 1);
CREATE UNIQUE INDEX security_events_event_key ON security_events (
    charge_point_id, type, reported_at, (md5(coalesce(tech_info, ''))::uuid),
    (CASE WHEN clock_suspect OR reported_at IS NULL THEN received_at END)
) NULLS NOT DISTINCT;
