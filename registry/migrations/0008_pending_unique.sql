-- One pending delivery per (consumer, message) (issue 14): after a SIGKILL the broker redelivers messages
-- whose spill had committed but whose acknowledgement was lost, and they were written a second time. The
-- spill store now skips such rows (distributor/delivery/spill.py) and dead-letter replay does too.

-- keep the first row of each (consumer, message): the one written first, so strict order stays arrival order
DELETE FROM pending_deliveries p USING pending_deliveries q
 WHERE p.consumer_id = q.consumer_id AND p.message_id = q.message_id AND p.id > q.id;

CREATE UNIQUE INDEX IF NOT EXISTS pending_deliveries_consumer_message_key
    ON pending_deliveries (consumer_id, message_id);

-- a consumer with options.order = "strict" drains its backlog in arrival (id) order
CREATE INDEX IF NOT EXISTS pending_deliveries_consumer_order_idx ON pending_deliveries (consumer_id, id);
