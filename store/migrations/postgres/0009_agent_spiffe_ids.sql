-- The SPIFFE IDs (mesh identities) bound to an agent: the PostgreSQL twin
-- of migrations/sqlite/0006. agents.spiffe_ids keeps them in the caller's
-- order; agent_spiffe_ids indexes them, like agent_hosts, answering "which
-- agent is spiffe://…" and making an ID belong to at most one agent. IDs
-- compare byte-wise (COLLATE "C"): one spelling is one identity.

ALTER TABLE agents ADD COLUMN spiffe_ids TEXT NOT NULL DEFAULT '[]';  -- JSON array of strings

CREATE TABLE agent_spiffe_ids (
    spiffe_id  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE
);

CREATE INDEX agent_spiffe_ids_agent_id ON agent_spiffe_ids (agent_id);
