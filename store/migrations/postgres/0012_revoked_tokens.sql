-- Agent tokens revoked one by one, as in migrations/sqlite/0009: by jti,
-- with the token's exp so dead rows can be pruned, and no token material.
-- Times are unix microseconds (UTC).
CREATE TABLE revoked_tokens (
    jti        TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    agent_id   TEXT   COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL,
    reason     TEXT   NOT NULL
);

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

-- Every revocation is announced on meshguard_revoked_tokens (payload: the
-- jti) as it commits, so every replica adds it to the set it checks tokens
-- against at once. Pruning (DELETE) is not announced: replicas drop dead
-- entries by their own clock.
CREATE TRIGGER revoked_tokens_notify AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION meshguard_notify('meshguard_revoked_tokens', 'jti');
