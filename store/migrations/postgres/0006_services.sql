-- Services put through the admin API, as in migrations/sqlite/0004: one
-- row per service, its catalogue entry as JSON. Times are unix
-- microseconds (UTC).

CREATE TABLE services (
    name        TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    spec        TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL
);
