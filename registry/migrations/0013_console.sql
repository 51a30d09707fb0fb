-- The web console's sign-in (issue 18): passwords, sessions and the failed-sign-in counters.
--
-- A user signs in with e-mail and password; the password is kept only as an argon2id hash, and a user
-- without one (every user made before this, or through the API) cannot sign in until
-- `iotd admin create-user` sets it.
--
-- A session is a random token in an HttpOnly cookie; the database keeps only its SHA-256 (``id_hash``),
-- so a copy of this table signs nobody in. It ends 30 minutes after the last request (``last_seen_at``),
-- 12 hours after sign-in at the latest (``expires_at``), at sign-out, or with its user.
--
-- Failed sign-ins are counted per account ('account:<email lowercased>') and per client address
-- ('address:<ip>') in a window; past the limit the scope is locked for a while, right password or not,
-- so passwords cannot be guessed at speed. Counting per e-mail whether or not the user exists tells a
-- guesser nothing about which addresses are registered.
ALTER TABLE users ADD COLUMN password_hash text;     -- argon2id (PHC string); NULL: cannot sign in

CREATE TABLE console_sessions (
    id_hash         text PRIMARY KEY,                 -- sha256 hex of the session token in the cookie
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token      text NOT NULL,                    -- sent back in every form of this session
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL              -- created_at + the absolute lifetime
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);

CREATE TABLE sign_in_failures (
    scope           text PRIMARY KEY,                 -- 'account:<email lowercased>' or 'address:<ip>'
    failures        integer NOT NULL DEFAULT 0,       -- within the window that began at window_start
    window_start    timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz                       -- sign-in refused until then
);
