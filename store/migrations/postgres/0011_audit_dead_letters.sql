-- Records the store refused as data (SQLSTATE class 22 or 23: an invalid
-- byte sequence, a value too long, a CHECK or NOT NULL violation): after a
-- bounded number of attempts, alone, the writer keeps each here, outside
-- the hash chain, which goes on from the record before it (after_hash).
-- Verification reports every dead letter.
-- record: the canonical JSON, or (escaped) its ASCII-quoted form, cut
-- short; error: the store's refusal; ts, dead_at: unix microseconds.
CREATE TABLE audit_dead_letters (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id   TEXT COLLATE "C" NOT NULL,
    record_id  TEXT NOT NULL,
    ts         BIGINT NOT NULL,
    after_hash TEXT NOT NULL,
    record     TEXT NOT NULL,
    escaped    BOOLEAN NOT NULL,
    error      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    dead_at    BIGINT NOT NULL
);
