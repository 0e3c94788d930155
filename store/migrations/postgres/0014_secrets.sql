-- Secrets MeshGuard generates once and every replica sharing the database
-- uses, as in migrations/sqlite/0011 (which says what each column holds).
CREATE TABLE secrets (
    name       TEXT   NOT NULL PRIMARY KEY,
    value      BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);
