-- Secrets MeshGuard generates once and every replica sharing the database
-- uses (docs/storage.md): name says what for ('approval-link': the key
-- signing approval links, docs/governance.md); value is random bytes.
-- created_at is unix microseconds (UTC), as in 0001. Never served.
CREATE TABLE secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
