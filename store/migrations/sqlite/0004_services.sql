-- Services put through the admin API (PUT /admin/services/{name}), kept
-- beside SERVICES_FILE: one row per service, its catalogue entry as JSON.
-- The catalogue validates entries before they are stored. Times are unix
-- microseconds (UTC), as in 0001.

CREATE TABLE services (
    name        TEXT    NOT NULL PRIMARY KEY,
    spec        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
