-- Invitations to sign up (auth.signup = "invite"): one email, one use,
-- an expiry; the link's token is kept only as its keyed hash, like a
-- login's.
CREATE TABLE invites (
    id         CHAR(36)     NOT NULL PRIMARY KEY,
    email      VARCHAR(254) NOT NULL,
    token_hash CHAR(64)     NOT NULL,
    created_by CHAR(36)     NOT NULL,
    created_at BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    used_at    BIGINT       NULL,
    used_by    CHAR(36)     NULL,
    revoked_at BIGINT       NULL,
    UNIQUE KEY uq_invites_token_hash (token_hash),
    KEY ix_invites_created (created_at, id),
    CONSTRAINT fk_invites_created_by FOREIGN KEY (created_by) REFERENCES users (id),
    CONSTRAINT fk_invites_used_by FOREIGN KEY (used_by) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
