-- The SPIFFE IDs (mesh identities) bound to an agent: a request whose
-- verified peer principal is one of them is that agent. agents.spiffe_ids
-- keeps them in the caller's order; agent_spiffe_ids indexes them, like
-- agent_hosts, answering "which agent is spiffe://…" and making an ID
-- belong to at most one agent. Both are rewritten in the same transaction
-- as the agent row.

ALTER TABLE agents ADD COLUMN spiffe_ids TEXT NOT NULL DEFAULT '[]';  -- JSON array of strings

CREATE TABLE agent_spiffe_ids (
    spiffe_id  TEXT NOT NULL PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE
) STRICT;

CREATE INDEX agent_spiffe_ids_agent_id ON agent_spiffe_ids (agent_id);
