-- Agent tokens revoked one by one (POST /admin/tokens/revoke), by jti:
-- every replica keeps the live ones in memory (identity.RevokedSet) and the
-- wasm filter's configuration carries them. expires_at is the token's exp
-- (or the latest a token could have had, when it was revoked by jti alone):
-- a row past it plus the verifier's leeway is dead and is pruned. No token
-- material is stored. Times are unix microseconds (UTC), as in 0001.
CREATE TABLE revoked_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    agent_id   TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    reason     TEXT    NOT NULL
) STRICT;

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
