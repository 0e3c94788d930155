-- The audit trail in its compact form, as migrations/sqlite/0013: the
-- record column becomes bytea (records already stored keep their full
-- JSON, which starts with '{'), the hashes their 32 bytes, and shadow says
-- whether a record carries a shadow answer. A hash that is not 64
-- lower-case hex digits (an edited row) is kept as it was, for verify to
-- report. The trace index keeps the first 8 hex digits, as SQLite's: trace
-- ids are random, and a full one made every insert dirty a random page of
-- a large index.

ALTER TABLE audit
    ALTER COLUMN record TYPE bytea USING convert_to(record, 'UTF8'),
    ALTER COLUMN prev_hash TYPE bytea USING
        CASE WHEN prev_hash ~ '^[0-9a-f]{64}$' THEN decode(prev_hash, 'hex') ELSE convert_to(prev_hash, 'UTF8') END,
    ALTER COLUMN hash TYPE bytea USING
        CASE WHEN hash ~ '^[0-9a-f]{64}$' THEN decode(hash, 'hex') ELSE convert_to(hash, 'UTF8') END,
    ADD COLUMN shadow BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE audit SET shadow = TRUE WHERE position(convert_to(',"shadow":{"decision":"', 'UTF8') IN record) > 0;

DROP INDEX audit_trace;
CREATE INDEX audit_trace ON audit (substr(trace_id, 1, 8));
