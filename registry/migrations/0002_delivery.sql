-- Retries, dead letters and the per-consumer delivery log.

ALTER TABLE pending_deliveries
    ADD COLUMN history jsonb NOT NULL DEFAULT '[]'::jsonb,   -- every attempt's {at, error, status}
    ADD COLUMN claimed_by text;                              -- instance holding the lease (next_attempt_at)

CREATE INDEX pending_deliveries_due_all_idx ON pending_deliveries (next_attempt_at);

CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    consumer_id     uuid NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    message_id      text NOT NULL,
    body            bytea NOT NULL,
    topic_vars      jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts        integer NOT NULL,
    history         jsonb NOT NULL DEFAULT '[]'::jsonb,
    last_error      text,
    last_status     integer,
    last_response   text,
    reason          text NOT NULL,          -- permanent refusal, max attempts, max age
    first_failed_at timestamptz NOT NULL,
    dead_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_consumer_idx ON dead_letters (consumer_id, dead_at DESC);
CREATE INDEX dead_letters_dead_at_idx ON dead_letters (dead_at);

CREATE TABLE consumer_stats (
    consumer_id          uuid PRIMARY KEY REFERENCES consumers(id) ON DELETE CASCADE,
    delivered            bigint NOT NULL DEFAULT 0,
    failed               bigint NOT NULL DEFAULT 0,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    last_failure_status  integer,
    last_failure_reason  text,
    circuit              text NOT NULL DEFAULT 'closed',
    updated_at           timestamptz NOT NULL DEFAULT now()
);
