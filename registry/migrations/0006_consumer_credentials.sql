-- Consumer credentials out of the URL column, and a real key derivation for stored secrets.
--
-- consumers.url keeps the masked URL (userinfo, query values and fragment as ***); the whole URL,
-- when it has such parts, is encrypted in url_enc. Rows stored before this migration still hold
-- their credentials in url: registry.installation moves them at start-up (it needs the key).
--
-- installation is one row: the scrypt salt and cost from which the Fernet key is derived from
-- IOTD_SECRET_KEY, a check value that tells a wrong key at start-up, and when the one-time steps
-- (re-encryption under the derived key, moving URL credentials) were done. Written by Python at the
-- first start (a random salt), never by hand.

ALTER TABLE consumers ADD COLUMN url_enc bytea;

CREATE TABLE installation (
    id                      boolean PRIMARY KEY DEFAULT true CHECK (id),
    kdf                     text NOT NULL CHECK (kdf = 'scrypt'),
    kdf_salt                bytea NOT NULL CHECK (length(kdf_salt) >= 16),
    kdf_params              jsonb NOT NULL,               -- {"n": 16384, "r": 8, "p": 1}
    key_check               bytea,                        -- a known text encrypted with the derived key
    secrets_rekeyed_at      timestamptz,                  -- ciphertexts of the SHA-256 key re-encrypted
    consumer_urls_moved_at  timestamptz,                  -- credentials moved from url to url_enc
    created_at              timestamptz NOT NULL DEFAULT now()
);
