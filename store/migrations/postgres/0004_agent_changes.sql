-- Every change to an agent is announced on the channel meshguard_agents
-- (payload: the agent's id) when its transaction commits, so each replica
-- drops what it cached about the agent at once (Postgres.WatchAgents):
-- revocation reaches every replica within the 1 s SPEC §2 asks, whoever
-- made the change (another replica, the CLI, an operator's UPDATE).

CREATE FUNCTION meshguard_agent_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('meshguard_agents', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END
$$;

CREATE TRIGGER agents_notify AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION meshguard_agent_changed();
