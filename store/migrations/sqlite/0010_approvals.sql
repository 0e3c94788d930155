-- Human approvals (docs/governance.md, docs/storage.md): one row per
-- approval asked for. binding is the SHA-256 of what it approves (agent,
-- chain, action, resource, arguments digest, context); the partial unique
-- index keeps one pending approval per binding, so a retried or concurrent
-- first request finds the approval raised already instead of raising
-- another. status is pending, approved, denied, expired or used. chain and
-- approvers are JSON arrays; arguments is the call's arguments as the audit
-- trail records them ('' when not recorded). ttl_us is 0 for a use-once
-- approval. Times are unix microseconds (UTC), as in 0001; decided_at is 0
-- until decided.
CREATE TABLE approvals (
    id               TEXT    NOT NULL PRIMARY KEY,
    binding          TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'used')),
    agent_id         TEXT    NOT NULL,
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
    ttl_us           INTEGER NOT NULL,
    trace_id         TEXT    NOT NULL,
    decision_id      TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    decided_by       TEXT    NOT NULL DEFAULT '',
    decided_at       INTEGER NOT NULL DEFAULT 0,
    decision_reason  TEXT    NOT NULL DEFAULT '',
    uses             INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE UNIQUE INDEX approvals_one_pending ON approvals (binding) WHERE status = 'pending';
CREATE INDEX approvals_binding ON approvals (binding, id);
CREATE INDEX approvals_status ON approvals (status, id);
CREATE INDEX approvals_agent ON approvals (agent_id, id);
