-- Charger security (OCPP 1.6 Security Whitepaper): profiles, passwords, certificates, events.

-- security_profile NULL means "the site default" (CSMS_SECURITY_PROFILE). The password is
-- only ever stored as a scrypt hash; pending_* hold a rotation or upgrade the charger has
-- been asked for but has not yet completed by connecting with it.
ALTER TABLE charge_points
    ADD COLUMN security_profile          smallint CHECK (security_profile BETWEEN 0 AND 3),
    ADD COLUMN pending_security_profile  smallint
                                         CHECK (pending_security_profile BETWEEN 1 AND 3),
    ADD COLUMN password_hash             text,
    ADD COLUMN pending_password_hash     text,
    ADD COLUMN password_changed_at       timestamptz;

-- SecurityEventNotification from chargers: the security event log.
CREATE TABLE security_events (
    id                bigserial PRIMARY KEY,
    charge_point_id   text NOT NULL,
    type              text NOT NULL,
    tech_info         text,
    reported_at       timestamptz,
    received_at       timestamptz NOT NULL
);
CREATE INDEX security_events_cp_idx ON security_events (charge_point_id, received_at);

-- Client certificates we signed for chargers (SignCertificate -> CertificateSigned).
CREATE TABLE charger_certificates (
    id                bigserial PRIMARY KEY,
    charge_point_id   text NOT NULL,
    serial_number     text NOT NULL,
    subject           text NOT NULL,
    not_before        timestamptz NOT NULL,
    not_after         timestamptz NOT NULL,
    certificate_pem   text NOT NULL,
    status            text NOT NULL
                      CHECK (status IN ('issued', 'accepted', 'rejected', 'not_delivered')),
    issued_at         timestamptz NOT NULL,
    answered_at       timestamptz
);
CREATE INDEX charger_certificates_cp_idx ON charger_certificates (charge_point_id, issued_at);

-- SignedFirmwareStatusNotification and LogStatusNotification, with their requestId.
CREATE TABLE security_notifications (
    id                bigserial PRIMARY KEY,
    charge_point_id   text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('signed_firmware', 'log')),
    status            text NOT NULL,
    request_id        integer,
    received_at       timestamptz NOT NULL
);
