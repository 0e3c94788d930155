-- Every change to an agent is announced on the channel meshguard_agents
-- (payload: the agent's id) when its transaction commits, so each replica
-- drops what it cached about the agent at once (Postgres.WatchAgents):
-- revocation reaches every replica within the 1 s docs/storage.md promises, whoever
-- made the change (another replica, the CLI, an operator's UPDATE).
--
-- meshguard_notify(channel, column) is the one trigger function of every
-- such feed: it announces the changed row's column on the channel.

CREATE FUNCTION meshguard_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], COALESCE(to_jsonb(NEW), to_jsonb(OLD)) ->> TG_ARGV[1]);
    RETURN NULL;
END
$$;

CREATE TRIGGER agents_notify AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION meshguard_notify('meshguard_agents', 'id');
