-- Records a store lost after it had committed them (PostgreSQL with
-- synchronous_commit off, a failover to a replica that never had them, a
-- row deleted by hand): the writer finds its chain's head older than the
-- last batch it stored, records the gap here and goes on from what the
-- store has. Verification reports every gap; nothing here is hashed.
-- after_seq/after_hash: the last record the store kept (0 and the genesis
-- or anchor hash if none); lost_head: the hash of the last record lost;
-- lost: how many were lost (-1: more than the writer remembered);
-- from_ts/to_ts: the time span of the records lost (unix microseconds).
CREATE TABLE audit_gaps (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id    TEXT COLLATE "C" NOT NULL,
    after_seq   BIGINT NOT NULL,
    after_hash  TEXT NOT NULL,
    lost_head   TEXT NOT NULL,
    lost        BIGINT NOT NULL,
    from_ts     BIGINT NOT NULL,
    to_ts       BIGINT NOT NULL,
    detected_at BIGINT NOT NULL
);

