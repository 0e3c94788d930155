-- Human approvals, as in migrations/sqlite/0010 (which says what each
-- column holds): the partial unique index keeps one pending approval per
-- binding across every replica sharing this database. Times are unix
-- microseconds (UTC).
CREATE TABLE approvals (
    id               TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
    binding          TEXT    COLLATE "C" NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'used')),
    agent_id         TEXT    COLLATE "C" NOT NULL,
    agent_name       TEXT    NOT NULL,
    chain            TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    resource         TEXT    NOT NULL,
    call_method      TEXT    NOT NULL,
    call_name        TEXT    NOT NULL,
    arguments        TEXT    NOT NULL,
    arguments_digest TEXT    NOT NULL,
    policy           TEXT    NOT NULL,
    rule             TEXT    NOT NULL,
    approvers        TEXT    NOT NULL,
    ttl_us           BIGINT  NOT NULL,
    trace_id         TEXT    NOT NULL,
    decision_id      TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    decided_by       TEXT    NOT NULL DEFAULT '',
    decided_at       BIGINT  NOT NULL DEFAULT 0,
    decision_reason  TEXT    NOT NULL DEFAULT '',
    uses             BIGINT  NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX approvals_one_pending ON approvals (binding) WHERE status = 'pending';
CREATE INDEX approvals_binding ON approvals (binding, id);
CREATE INDEX approvals_status ON approvals (status, id);
CREATE INDEX approvals_agent ON approvals (agent_id, id);
