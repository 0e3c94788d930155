-- Policies applied through the admin API (POST /admin/policies), kept beside
-- the files under POLICIES_DIR. One row per policy: its name and the YAML of
-- its document, verbatim (comments included), as the caller sent it.
-- Times are unix microseconds (UTC), as in 0001.

CREATE TABLE policies (
    name        TEXT    NOT NULL PRIMARY KEY,
    yaml        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
