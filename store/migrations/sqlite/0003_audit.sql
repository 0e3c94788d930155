-- The audit trail (SPEC §7). seq is the chain order: each record's prev_hash
-- is the hash of the record before it in seq order. The record column holds
-- the whole record as JSON (what the hash covers, plus the hashes); the
-- other columns repeat the fields queries filter on, with their indexes.
-- ts is unix microseconds (UTC), as in 0001.

CREATE TABLE audit (
    seq        INTEGER NOT NULL PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    ts         INTEGER NOT NULL,
    agent_id   TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    decision   TEXT    NOT NULL CHECK (decision IN ('allow', 'deny')),
    trace_id   TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    record     TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_agent ON audit (agent_id, ts);
CREATE INDEX audit_trace ON audit (trace_id);
