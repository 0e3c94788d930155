-- Agents, the hosts they are reached under, and the signing keys: the
-- PostgreSQL twin of migrations/sqlite/0001. Times are unix microseconds
-- (UTC) in BIGINT, not timestamptz, so both backends share the code that
-- reads and writes them. Names sort byte-wise (COLLATE "C"), as in SQLite.

CREATE TABLE agents (
    id          TEXT   NOT NULL PRIMARY KEY,
    name        TEXT   COLLATE "C" NOT NULL UNIQUE,
    trust_tier  TEXT   NOT NULL CHECK (trust_tier IN ('untrusted', 'verified', 'trusted', 'privileged')),
    tags        TEXT   NOT NULL,  -- JSON array of strings
    hosts       TEXT   NOT NULL,  -- JSON array of strings, in the caller's order
    metadata    TEXT   NOT NULL,  -- JSON object of strings
    status      TEXT   NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- agent_hosts indexes agents.hosts: it answers "which agent is reached under
-- host X" and makes a host belong to at most one agent. It is rewritten in the
-- same transaction as the agent row, so the two never disagree.
CREATE TABLE agent_hosts (
    host      TEXT NOT NULL PRIMARY KEY,
    agent_id  TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE
);

CREATE INDEX agent_hosts_agent_id ON agent_hosts (agent_id);

CREATE TABLE signing_keys (
    kid          TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    alg          TEXT   NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
    private_der  BYTEA  NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT           -- NULL while the key is current
);

CREATE INDEX signing_keys_created_at ON signing_keys (created_at, kid);

-- At most one current key, whatever a buggy or concurrent caller does.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL))
    WHERE retired_at IS NULL;
