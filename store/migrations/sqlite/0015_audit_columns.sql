-- The audit row's columns in fewer bytes (docs/storage.md, store/auditcols.go):
-- an id the engine made ("aud_" and 24 lower-case hex digits) as its 12
-- bytes, a trace id of 32 lower-case hex digits as its 16, the decision as
-- 0 (allow) or 1 (deny), a source the engine writes as its number. Any
-- other id, trace id or source stays the text it is, in the same ANY
-- column (a BLOB never equals a TEXT, so each value has one stored form).
-- The record column and the hashes are unchanged: the chain verifies as
-- before.

CREATE TABLE audit_new (
    seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    chain_id   TEXT    NOT NULL DEFAULT '',
    id         ANY     NOT NULL UNIQUE,
    ts         INTEGER NOT NULL,
    agent      INTEGER NOT NULL DEFAULT 0,
    action     TEXT    NOT NULL,
    decision   INTEGER NOT NULL CHECK (decision IN (0, 1)),
    trace_id   ANY     NOT NULL,
    status     INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    source     ANY     NOT NULL,
    shadow     INTEGER NOT NULL DEFAULT 0,
    record     BLOB    NOT NULL,
    prev_hash  BLOB    NOT NULL,
    hash       BLOB    NOT NULL
) STRICT;

INSERT INTO audit_new (seq, chain_id, id, ts, agent, action, decision, trace_id, status, reason, source, shadow, record, prev_hash, hash)
SELECT seq, chain_id,
       CASE WHEN length(id) = 28 AND substr(id, 1, 4) = 'aud_' AND lower(id) = id AND unhex(substr(id, 5)) IS NOT NULL
            THEN unhex(substr(id, 5)) ELSE id END,
       ts, agent, action, CASE decision WHEN 'deny' THEN 1 ELSE 0 END,
       CASE WHEN length(trace_id) = 32 AND lower(trace_id) = trace_id AND unhex(trace_id) IS NOT NULL
            THEN unhex(trace_id) ELSE trace_id END,
       status, reason,
       CASE source WHEN 'ext_authz-grpc' THEN 0 WHEN 'ext_authz-http' THEN 1 WHEN 'gateway' THEN 2
                   WHEN 'wasm' THEN 3 WHEN 'api' THEN 4 WHEN 'delegation' THEN 5 ELSE source END,
       shadow, record, prev_hash, hash
FROM audit ORDER BY seq;

-- Positions are never reused: carry the old table's counter over.
DELETE FROM sqlite_sequence WHERE name = 'audit_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'audit_new', seq FROM sqlite_sequence WHERE name = 'audit';

DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;

CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_agent ON audit (agent, ts);
CREATE INDEX audit_trace ON audit (substr(trace_id, 1, 8));
