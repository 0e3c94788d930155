-- Records the store refused as data (a CHECK or NOT NULL constraint, a
-- value too big): after a bounded number of attempts, alone, the writer
-- keeps each here, outside the hash chain, which goes on from the record
-- before it (after_hash). Verification reports every dead letter.
-- record: the canonical JSON, or (escaped = 1) its ASCII-quoted form, cut
-- short; error: the store's refusal; ts, dead_at: unix microseconds.
CREATE TABLE audit_dead_letters (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    chain_id   TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    after_hash TEXT NOT NULL,
    record     TEXT NOT NULL,
    escaped    INTEGER NOT NULL,
    error      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    dead_at    INTEGER NOT NULL
) STRICT;
