-- Erasing a device's stored messages (issue 17, GDPR): every erasure is remembered for a day, and the
-- history's hourly maintenance erases those devices' messages again, so a message that was already on its
-- way into the store when the device was deleted (in another instance, say) is erased too.
CREATE TABLE history_erasures (
    device_id   uuid        PRIMARY KEY,
    erased_at   timestamptz NOT NULL DEFAULT now()
);
