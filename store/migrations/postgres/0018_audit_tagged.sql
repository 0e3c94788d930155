-- The audit row's id, trace id and source in fewer bytes, as
-- migrations/sqlite/0015 (docs/storage.md, "The audit row"). PostgreSQL has
-- no column that holds either a text or bytes, so each is bytea with a tag
-- byte: 0 and the engine's form (an id "aud_" + 24 lower-case hex digits as
-- its 12 bytes, a trace id of 32 lower-case hex digits as its 16, a source
-- the engine writes as its number in store/auditcols.go's list), or 1 and
-- the text (a client's). Each text has exactly one stored form, so the
-- unique id index and lookups hold. The decision is 0 (allow) or 1 (deny).
-- The trace index keeps the tag and 6 bytes: its entries are then 16 bytes,
-- the least a B-tree entry takes (it was 24 with 8 hex digits).

DROP INDEX audit_trace;
ALTER TABLE audit DROP CONSTRAINT audit_decision_check;

ALTER TABLE audit
    ALTER COLUMN id TYPE bytea USING
        CASE WHEN id ~ '^aud_[0-9a-f]{24}$' THEN '\x00'::bytea || decode(substr(id, 5), 'hex')
        ELSE '\x01'::bytea || convert_to(id, 'UTF8') END,
    ALTER COLUMN trace_id TYPE bytea USING
        CASE WHEN trace_id ~ '^[0-9a-f]{32}$' THEN '\x00'::bytea || decode(trace_id, 'hex')
        ELSE '\x01'::bytea || convert_to(trace_id, 'UTF8') END,
    ALTER COLUMN decision TYPE smallint USING CASE decision WHEN 'deny' THEN 1 ELSE 0 END,
    ALTER COLUMN source TYPE bytea USING
        CASE source
            WHEN 'ext_authz-grpc' THEN '\x0000'::bytea
            WHEN 'ext_authz-http' THEN '\x0001'::bytea
            WHEN 'gateway' THEN '\x0002'::bytea
            WHEN 'wasm' THEN '\x0003'::bytea
            WHEN 'api' THEN '\x0004'::bytea
            WHEN 'delegation' THEN '\x0005'::bytea
            ELSE '\x01'::bytea || convert_to(source, 'UTF8') END,
    ADD CONSTRAINT audit_decision_check CHECK (decision IN (0, 1));

CREATE INDEX audit_trace ON audit (substr(trace_id, 1, 7));
