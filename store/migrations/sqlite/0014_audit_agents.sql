-- Agent ids through a dictionary (docs/storage.md): a trail holds a few
-- agents' records many times over, so each row stores a small number
-- (audit.agent, 1 or 2 bytes) for its agent's id, and the (agent, ts)
-- index is a third of what it was. A row's agent is inside its hash
-- (store/auditrow.go), so an edited number or dictionary entry breaks the
-- verification of every record it names.

CREATE TABLE audit_agents (
    n        INTEGER NOT NULL PRIMARY KEY,
    agent_id TEXT    NOT NULL UNIQUE
) STRICT;

INSERT INTO audit_agents (agent_id) SELECT DISTINCT agent_id FROM audit ORDER BY agent_id;

ALTER TABLE audit ADD COLUMN agent INTEGER NOT NULL DEFAULT 0;
UPDATE audit SET agent = (SELECT g.n FROM audit_agents g WHERE g.agent_id = audit.agent_id);
DROP INDEX audit_agent;
ALTER TABLE audit DROP COLUMN agent_id;
CREATE INDEX audit_agent ON audit (agent, ts);
