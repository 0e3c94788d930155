-- The alert outbox (docs/alerting.md): one row per alert and provider until the
-- provider has it, so a restart or a receiver outage loses no alert.
-- next_at is when the row may be tried (again): pushed ahead while a
-- delivery is under way (a lease), then by the backoff after a failure.
-- Times are unix microseconds (UTC), as in 0001.

CREATE TABLE alert_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT    NOT NULL,
    alert_id    TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    last_error  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX alert_outbox_due ON alert_outbox (provider, next_at, id);
