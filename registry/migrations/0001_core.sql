-- Core registry: organizations -> applications -> devices; consumers and subscriptions;
-- device state and events; unknown devices; pending deliveries (the durable spill/retry store).

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE applications (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name             text NOT NULL,
    description      text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name)
);

CREATE TABLE devices (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    application_id   uuid NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    name             text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('lorawan', 'nbiot', 'http', 'mqtt')),
    decoder          text,
    dev_eui          text UNIQUE CHECK (dev_eui ~ '^[0-9a-f]{16}$'),
    join_eui         text CHECK (join_eui ~ '^[0-9a-f]{16}$'),
    app_key_enc      bytea,
    imei             text UNIQUE,
    imsi             text,
    ingest_key_hash  text UNIQUE,
    tags             jsonb NOT NULL DEFAULT '{}'::jsonb,
    lat              double precision,
    lon              double precision,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'lorawan' OR dev_eui IS NOT NULL)
);
CREATE INDEX devices_application_idx ON devices (application_id);

CREATE TABLE consumers (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name             text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('http', 'mqtt')),
    url              text NOT NULL,
    format           text NOT NULL DEFAULT 'native' CHECK (format IN ('native', 'senml', 'raw')),
    secret_enc       bytea,
    headers_enc      bytea,
    qos              smallint NOT NULL DEFAULT 1 CHECK (qos IN (0, 1)),
    batch_size       integer NOT NULL DEFAULT 1 CHECK (batch_size BETWEEN 1 AND 10000),
    batch_wait_ms    integer NOT NULL DEFAULT 0 CHECK (batch_wait_ms BETWEEN 0 AND 60000),
    timeout_s        double precision NOT NULL DEFAULT 10 CHECK (timeout_s > 0 AND timeout_s <= 300),
    enabled          boolean NOT NULL DEFAULT true,
    options          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name)
);

CREATE TABLE subscriptions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consumer_id     uuid NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    application_id  uuid REFERENCES applications(id) ON DELETE CASCADE,
    device_ids      uuid[] NOT NULL DEFAULT '{}',
    decoder         text,
    tags            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_consumer_idx ON subscriptions (consumer_id);

-- What the device last said about itself (join, status, log) and its latest message.
CREATE TABLE device_state (
    device_id        uuid PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    last_seen        timestamptz,
    last_f_cnt       bigint,
    last_message     jsonb,
    message_count    bigint NOT NULL DEFAULT 0,
    battery_level    double precision,
    margin           integer,
    external_power   boolean,
    joined_at        timestamptz,
    dev_addr         text,
    last_log         jsonb,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Non-uplink events (join, status, log, ...) kept for IT's troubleshooting.
CREATE TABLE device_events (
    id          bigserial PRIMARY KEY,
    device_id   uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    event       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX device_events_device_idx ON device_events (device_id, at DESC);

CREATE TABLE unknown_devices (
    source      text NOT NULL,
    identifier  text NOT NULL,            -- dev_eui for LoRaWAN
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    count       bigint NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,   -- e.g. ChirpStack application and device name
    PRIMARY KEY (source, identifier)
);

-- Deliveries that did not happen at once: retried from here until delivered or dead.
CREATE TABLE pending_deliveries (
    id              bigserial PRIMARY KEY,
    consumer_id     uuid NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    message_id      text NOT NULL,
    body            bytea NOT NULL,                  -- rendered in the consumer's format
    topic_vars      jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    last_status     integer,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_deliveries_due_idx ON pending_deliveries (consumer_id, next_attempt_at);

-- Every registry change tells the distributors' caches to reload (LISTEN iotd_registry).
CREATE FUNCTION iotd_notify_registry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('iotd_registry', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER organizations_notify AFTER INSERT OR UPDATE OR DELETE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_registry();
CREATE TRIGGER applications_notify AFTER INSERT OR UPDATE OR DELETE ON applications
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_registry();
CREATE TRIGGER devices_notify AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_registry();
CREATE TRIGGER consumers_notify AFTER INSERT OR UPDATE OR DELETE ON consumers
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_registry();
CREATE TRIGGER subscriptions_notify AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_registry();
