-- The REST API: versions for optimistic concurrency, application metadata, devices' expected
-- interval and IMSI, users, API keys, the audit log and per-day message statistics.

ALTER TABLE organizations
    ADD COLUMN description text NOT NULL DEFAULT '',
    ADD COLUMN version integer NOT NULL DEFAULT 1;

ALTER TABLE applications
    ADD COLUMN status text NOT NULL DEFAULT 'in_operation'
        CHECK (status IN ('planned', 'in_development', 'prototype', 'in_operation', 'retired')),
    ADD COLUMN owner text NOT NULL DEFAULT '',
    ADD COLUMN contact_name text NOT NULL DEFAULT '',
    ADD COLUMN contact_email text NOT NULL DEFAULT '',
    ADD COLUMN contact_phone text NOT NULL DEFAULT '',
    ADD COLUMN personal_data boolean NOT NULL DEFAULT false,
    ADD COLUMN data_classification text NOT NULL DEFAULT 'closed'
        CHECK (data_classification IN ('open', 'shared', 'closed')),
    ADD COLUMN version integer NOT NULL DEFAULT 1;

ALTER TABLE devices
    ADD COLUMN interval_s integer CHECK (interval_s > 0),
    ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE devices ADD CONSTRAINT devices_imei_check CHECK (imei ~ '^[0-9]{15}$');
CREATE INDEX devices_tags_idx ON devices USING gin (tags);

ALTER TABLE consumers ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE subscriptions ADD COLUMN version integer NOT NULL DEFAULT 1;

CREATE TABLE users (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid REFERENCES organizations(id) ON DELETE CASCADE,   -- NULL: a global administrator
    name             text NOT NULL,
    email            text NOT NULL UNIQUE,
    role             text NOT NULL CHECK (role IN ('admin', 'write', 'read')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1
);

CREATE TABLE api_keys (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid REFERENCES organizations(id) ON DELETE CASCADE,   -- NULL: a global key
    user_id          uuid REFERENCES users(id) ON DELETE SET NULL,
    name             text NOT NULL,
    role             text NOT NULL CHECK (role IN ('admin', 'write', 'read')),
    key_hash         text NOT NULL UNIQUE,
    prefix           text NOT NULL,                 -- the first characters, to recognise a key
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    expires_at       timestamptz,
    revoked_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1
);

CREATE TABLE audit_log (
    id               bigserial PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    organization_id  uuid,                           -- kept after the organization is gone
    actor_key_id     uuid,
    actor            text NOT NULL,
    action           text NOT NULL,                  -- create, update, delete, rotate, replay, ...
    resource         text NOT NULL,
    resource_id      text,
    before           jsonb,
    after            jsonb
);
CREATE INDEX audit_log_org_idx ON audit_log (organization_id, at DESC);

-- Message statistics per device and day (UTC), written in batches by the state writer.
CREATE TABLE device_daily_stats (
    device_id  uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    day        date NOT NULL,
    count      bigint NOT NULL DEFAULT 0,
    best_rssi  integer,
    best_snr   double precision,
    PRIMARY KEY (device_id, day)
);
