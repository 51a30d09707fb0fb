-- Message history (issue 17): every uplink that reached the pipeline, kept per application for
-- ``retention_days`` (default 30; 0 keeps nothing).
--
-- Retention is enforced by dropping whole partitions, never by deleting rows: ``messages`` is partitioned
-- by the retention its application had when the message arrived (LIST), and each retention class by time
-- (RANGE, a day wide up to 62 days of retention, a week wide beyond). The partitions are created ahead and
-- dropped when expired by ``registry.history_partitions``; a write that finds none (a new retention class)
-- creates it then. A retention change therefore applies to messages stored from then on.
--
-- A message redelivered after a crash (its acknowledgement was lost) can be stored twice: the partition
-- key cannot make the id unique. Readers return each id once.
ALTER TABLE applications ADD COLUMN retention_days integer NOT NULL DEFAULT 30
    CHECK (retention_days BETWEEN 0 AND 3650);

CREATE TABLE messages (
    retention_days  smallint    NOT NULL,
    received_at     timestamptz NOT NULL,
    id              uuid        NOT NULL,
    device_id       uuid        NOT NULL,
    application_id  uuid        NOT NULL,
    organization_id uuid        NOT NULL,
    f_port          integer,
    payload         bytea       NOT NULL,                -- the raw payload as received
    body            bytea       NOT NULL,                -- the iotd.message/1 as delivered (JSON)
    names           text[]      NOT NULL,                -- numeric measurements: names and values, for charts
    vals            float8[]    NOT NULL
) PARTITION BY LIST (retention_days);

CREATE INDEX messages_device_time ON messages (device_id, received_at);
CREATE INDEX messages_application_time ON messages (application_id, received_at);

-- lz4 compresses the stored messages several times faster than the default pglz; a server built without it
-- (e.g. the embedded one of `iotd demo`) keeps pglz. Partitions made later inherit the column's setting.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)) THEN
        ALTER TABLE messages ALTER COLUMN body SET COMPRESSION lz4;
    END IF;
END $$;
