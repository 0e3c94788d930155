-- The audit trail (docs/audit.md), as in migrations/sqlite/0003, with one
-- difference: several replicas append to one database, so the trail is a
-- set of hash chains, one per writer (see store/doc.go). chain_id names the
-- hash chain a record belongs to (not the delegation chain, which is inside
-- record). seq orders records; within a chain, each record's prev_hash is
-- the hash of the chain's record before it in seq order.
--
-- audit_chains holds each chain's head: AppendAudit moves it only from the
-- hash a batch links to, so two writers can never interleave in one chain,
-- and a verifier can tell records deleted from a chain's end.

CREATE TABLE audit_chains (
    chain_id    TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    head        TEXT   NOT NULL,  -- hash of the chain's last record
    records     BIGINT NOT NULL,  -- how many records the chain holds
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- No foreign key to audit_chains: it would cost a lookup per record, and
-- AppendAudit writes both in one transaction anyway.
CREATE TABLE audit (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id   TEXT   COLLATE "C" NOT NULL,
    id         TEXT   NOT NULL UNIQUE,
    ts         BIGINT NOT NULL,
    agent_id   TEXT   COLLATE "C" NOT NULL,
    action     TEXT   COLLATE "C" NOT NULL, -- byte-wise, for action-prefix ranges
    decision   TEXT   NOT NULL CHECK (decision IN ('allow', 'deny')),
    trace_id   TEXT   NOT NULL,
    status     INTEGER NOT NULL,
    reason     TEXT   COLLATE "C" NOT NULL,
    source     TEXT   COLLATE "C" NOT NULL,
    record     TEXT   NOT NULL,  -- the canonical encoding, the bytes the hash covers
    prev_hash  TEXT   NOT NULL,
    hash       TEXT   NOT NULL
);

CREATE INDEX audit_chain ON audit (chain_id, seq);
CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_agent ON audit (agent_id, ts);
CREATE INDEX audit_trace ON audit (trace_id);

-- Retention deletes the oldest records of each chain and leaves an anchor:
-- the position, hash and time of the last record it deleted from that
-- chain. Verification of what is left starts from the chain's newest
-- anchor instead of the genesis hash.
CREATE TABLE audit_anchors (
    chain_id   TEXT   COLLATE "C" NOT NULL,
    last_seq   BIGINT NOT NULL PRIMARY KEY,
    last_hash  TEXT   NOT NULL,
    last_ts    BIGINT NOT NULL,
    deleted    BIGINT NOT NULL,
    pruned_at  BIGINT NOT NULL
);
CREATE INDEX audit_anchors_chain ON audit_anchors (chain_id, last_seq);
