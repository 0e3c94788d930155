-- The audit trail in its compact form (docs/storage.md, issue 21): the
-- record column keeps the canonical encoding without what the columns
-- hold, its common phrases abbreviated (store/auditrow.go), as a BLOB; the
-- hashes are their 32 bytes, not 64 hex digits; shadow says whether the
-- record carries a shadow answer (a filter that read the JSON before).
-- Records already stored keep their full JSON (it starts with '{') and
-- their hashes, so the chain verifies as before. A hash that is not 64
-- lower-case hex digits (an edited row) is kept as it was, for verify to
-- report.

CREATE TABLE audit_new (
    seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    chain_id   TEXT    NOT NULL DEFAULT '',
    id         TEXT    NOT NULL UNIQUE,
    ts         INTEGER NOT NULL,
    agent_id   TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    decision   TEXT    NOT NULL CHECK (decision IN ('allow', 'deny')),
    trace_id   TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    shadow     INTEGER NOT NULL DEFAULT 0,  -- 0 or 1: SQLite stores either in no bytes
    record     BLOB    NOT NULL,
    prev_hash  BLOB    NOT NULL,
    hash       BLOB    NOT NULL
) STRICT;

INSERT INTO audit_new (seq, chain_id, id, ts, agent_id, action, decision, trace_id, status, reason, source, shadow, record, prev_hash, hash)
SELECT seq, chain_id, id, ts, agent_id, action, decision, trace_id, status, reason, source,
       record LIKE '%,"shadow":{"decision":"%', CAST(record AS BLOB),
       CASE WHEN length(prev_hash) = 64 AND lower(prev_hash) = prev_hash AND unhex(prev_hash) IS NOT NULL THEN unhex(prev_hash) ELSE CAST(prev_hash AS BLOB) END,
       CASE WHEN length(hash) = 64 AND lower(hash) = hash AND unhex(hash) IS NOT NULL THEN unhex(hash) ELSE CAST(hash AS BLOB) END
FROM audit ORDER BY seq;

-- Positions are never reused: carry the old table's counter over (it is
-- ahead of the rows when retention emptied the table's end).
DELETE FROM sqlite_sequence WHERE name = 'audit_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'audit_new', seq FROM sqlite_sequence WHERE name = 'audit';

DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;

CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_agent ON audit (agent_id, ts);
CREATE INDEX audit_trace ON audit (substr(trace_id, 1, 8));
