-- Decoder trials (the test endpoints and the checks of create/update) are rate-limited per organization
-- (a global key: per key) with a token bucket that every instance shares: registry.js_store.take_trial
-- spends a token with one atomic INSERT ... ON CONFLICT DO UPDATE per trial (never on the uplink path).

CREATE TABLE trial_limits (
    bucket      text PRIMARY KEY,                -- 'org:<organization id>' or 'key:<api key id>'
    tokens      double precision NOT NULL,       -- what was left after the last trial
    updated_at  timestamptz NOT NULL DEFAULT now()
);
