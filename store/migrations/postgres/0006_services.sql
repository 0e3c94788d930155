-- Services put through the admin API, as in migrations/sqlite/0004: one
-- row per service, its catalogue entry as JSON. Times are unix
-- microseconds (UTC).

CREATE TABLE services (
    name        TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    spec        TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Every change is announced on meshguard_services (payload: the name), so
-- every replica reloads its catalogue and pushes it (Postgres.WatchServices).
CREATE TRIGGER services_notify AFTER INSERT OR UPDATE OR DELETE ON services
    FOR EACH ROW EXECUTE FUNCTION meshguard_notify('meshguard_services', 'name');
