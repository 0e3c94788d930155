-- Policies applied through the admin API and signing keys are announced
-- like agents and services (migration 0004's meshguard_notify), so every
-- replica reloads its policy set or its keyring as the change commits
-- rather than on its next timer: on meshguard_policies (payload: the
-- policy's name) and meshguard_keys (payload: the kid; the trigger reads
-- only that column into the payload, never the private key).

CREATE TRIGGER policies_notify AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION meshguard_notify('meshguard_policies', 'name');

CREATE TRIGGER signing_keys_notify AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION meshguard_notify('meshguard_keys', 'kid');
