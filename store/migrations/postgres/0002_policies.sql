-- Policies applied through the admin API, as in migrations/sqlite/0002: one
-- row per policy, its YAML verbatim. Times are unix microseconds (UTC).

CREATE TABLE policies (
    name        TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    yaml        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
