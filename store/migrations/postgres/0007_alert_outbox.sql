-- The alert outbox, as in migrations/sqlite/0005: one row per alert and
-- provider until the provider has it. Replicas claim due rows with
-- FOR UPDATE SKIP LOCKED and a lease (next_at pushed ahead), so each row is
-- delivered by one replica at a time. Times are unix microseconds (UTC).

CREATE TABLE alert_outbox (
    id          BIGSERIAL PRIMARY KEY,
    provider    TEXT      NOT NULL,
    alert_id    TEXT      NOT NULL,
    payload     TEXT      NOT NULL,
    attempts    INTEGER   NOT NULL DEFAULT 0,
    next_at     BIGINT    NOT NULL,
    last_error  TEXT      NOT NULL DEFAULT '',
    created_at  BIGINT    NOT NULL
);

CREATE INDEX alert_outbox_due ON alert_outbox (provider, next_at, id);
