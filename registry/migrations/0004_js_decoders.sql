-- JavaScript decoders registered through the API or imported from public codec collections.

CREATE TABLE js_decoders (
    id               text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,79}$'),
    organization_id  uuid REFERENCES organizations(id) ON DELETE CASCADE,   -- NULL: shared with every organization
    vendor           text NOT NULL DEFAULT '',
    model            text NOT NULL DEFAULT '',
    description      text NOT NULL DEFAULT '',
    dialect          text NOT NULL CHECK (dialect IN ('ttn', 'chirpstack-v4', 'chirpstack-v3', 'os2iot')),
    source           text NOT NULL,
    examples         jsonb NOT NULL DEFAULT '[]'::jsonb,
    timeout_ms       integer NOT NULL DEFAULT 100 CHECK (timeout_ms BETWEEN 1 AND 5000),
    origin           text NOT NULL DEFAULT 'api',      -- api, or the repository path it was imported from
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1
);
CREATE INDEX js_decoders_org_idx ON js_decoders (organization_id);

CREATE TRIGGER js_decoders_notify AFTER INSERT OR UPDATE OR DELETE ON js_decoders
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_registry();
