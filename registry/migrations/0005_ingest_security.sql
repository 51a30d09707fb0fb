-- Who may send data in: tokens for ChirpStack's HTTP integration, and organizations mapped to the
-- ChirpStack tenants (optionally narrowed to applications) whose events they may receive.
-- Both are read by every distributor's in-memory registry cache (NOTIFY below), never per message.

CREATE TABLE integration_tokens (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  text NOT NULL,
    token_hash            text NOT NULL UNIQUE,          -- SHA-256 of the token, like API keys
    prefix                text NOT NULL,                 -- the first characters, to recognise a token
    chirpstack_tenant_id  uuid,                          -- NULL: events of any tenant
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    revoked_at            timestamptz,
    version               integer NOT NULL DEFAULT 1
);

CREATE TABLE chirpstack_mappings (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    tenant_id        uuid NOT NULL,                      -- ChirpStack's tenant id
    application_id   uuid,                               -- NULL: every application of the tenant
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1
);
-- one organization per tenant, and per tenant+application (the more specific mapping wins)
CREATE UNIQUE INDEX chirpstack_mappings_tenant_idx ON chirpstack_mappings (tenant_id) WHERE application_id IS NULL;
CREATE UNIQUE INDEX chirpstack_mappings_application_idx ON chirpstack_mappings (tenant_id, application_id)
    WHERE application_id IS NOT NULL;
CREATE INDEX chirpstack_mappings_org_idx ON chirpstack_mappings (organization_id);

CREATE TRIGGER integration_tokens_notify AFTER INSERT OR UPDATE OR DELETE ON integration_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_registry();
CREATE TRIGGER chirpstack_mappings_notify AFTER INSERT OR UPDATE OR DELETE ON chirpstack_mappings
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_registry();
