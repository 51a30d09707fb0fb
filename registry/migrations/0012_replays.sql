-- Replays, backfills and reprocessing of the message history (issue 17).
--
-- A replay job re-delivers stored messages to one consumer in time order, through its lane, retry and
-- dead-letter machinery, marked as replays. Any distributor instance may run a job: it claims it with a
-- lease and records its position (``cursor_at``, ``cursor_id``) after each batch was delivered or spilled,
-- so a job whose instance died goes on from there on another (a batch may then go out twice: delivery is
-- at least once, and receivers de-duplicate by message id).
--
-- A backfill is a replay made with a subscription (``backfill_from``): the subscription delivers live only
-- messages received from ``subscriptions.live_from`` on, and the backfill delivers the stored ones before
-- it, so the seam has neither a gap nor a duplicate (distributor/replay.py).
--
-- A reprocess job decodes stored uplinks of a decoder's devices again with the decoder's current version,
-- stores the new result in place of the old one and may deliver it, as a replay, to chosen consumers.
ALTER TABLE subscriptions ADD COLUMN live_from timestamptz;

CREATE TABLE replays (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consumer_id     uuid REFERENCES consumers(id) ON DELETE CASCADE,      -- replay, backfill: the consumer
    consumer_ids    uuid[] NOT NULL DEFAULT '{}',                         -- reprocess: who gets the results
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('replay', 'backfill', 'reprocess')),
    subscription_id uuid REFERENCES subscriptions(id) ON DELETE CASCADE,   -- backfill: whose messages
    decoder         text,                                                  -- reprocess: whose devices' uplinks
    application_id  uuid,
    device_ids      uuid[] NOT NULL DEFAULT '{}',
    from_at         timestamptz NOT NULL,
    to_at           timestamptz NOT NULL,
    rate            integer NOT NULL CHECK (rate > 0),                     -- messages per second at most
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'done', 'cancelled', 'failed')),
    cursor_at       timestamptz,            -- the position: messages up to (cursor_at, cursor_id) are out
    cursor_id       uuid,
    sent            bigint NOT NULL DEFAULT 0,    -- delivered at once
    spilled         bigint NOT NULL DEFAULT 0,    -- handed to the retry machinery (pending or dead letter)
    skipped         bigint NOT NULL DEFAULT 0,    -- stored, but not (or no longer) for this consumer
    waiting         text,                         -- why the job does not advance now (circuit open, ...)
    error           text,
    claimed_by      text,
    lease_until     timestamptz,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1
);
CREATE INDEX replays_consumer_idx ON replays (consumer_id, created_at DESC);
CREATE INDEX replays_open_idx ON replays (created_at) WHERE state IN ('queued', 'running');

-- a job reads an organization's messages a time window at a time: a BRIN index finds a window's blocks
-- (messages arrive in time order) at almost no cost to the writes
CREATE INDEX messages_time_brin ON messages USING brin (received_at);
