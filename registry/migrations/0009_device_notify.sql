-- Device changes name the devices they touch (issue 16): a running registry cache then updates those
-- devices instead of reloading the whole registry (20 s and twice the memory at a million devices).
-- A statement that touches more than 200 devices (an import) asks for a whole reload, as before; 200 ids
-- keep the payload under NOTIFY's 8,000-byte limit.
DROP TRIGGER devices_notify ON devices;

CREATE FUNCTION iotd_notify_devices() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    ids text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT count(*), string_agg(id::text, ',') INTO n, ids FROM (SELECT id FROM old_rows LIMIT 201) r;
    ELSE
        SELECT count(*), string_agg(id::text, ',') INTO n, ids FROM (SELECT id FROM new_rows LIMIT 201) r;
    END IF;
    IF n > 200 THEN
        PERFORM pg_notify('iotd_registry', 'devices');
    ELSIF n > 0 THEN
        PERFORM pg_notify('iotd_registry', 'devices:' || ids);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_notify_insert AFTER INSERT ON devices REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_devices();
CREATE TRIGGER devices_notify_update AFTER UPDATE ON devices REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_devices();
CREATE TRIGGER devices_notify_delete AFTER DELETE ON devices REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION iotd_notify_devices();
