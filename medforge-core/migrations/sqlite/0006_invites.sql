-- Invitations to sign up (auth.signup = "invite"): one email, one use,
-- an expiry; the link's token is kept only as its keyed hash, like a
-- login's.
CREATE TABLE invites (
    id         TEXT    NOT NULL PRIMARY KEY,
    email      TEXT    NOT NULL,
    token_hash TEXT    NOT NULL,
    created_by TEXT    NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    used_by    TEXT REFERENCES users (id),
    revoked_at INTEGER
);
CREATE UNIQUE INDEX uq_invites_token_hash ON invites (token_hash);
CREATE INDEX ix_invites_created ON invites (created_at, id);
