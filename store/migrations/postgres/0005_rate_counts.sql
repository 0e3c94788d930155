-- Shared rate-limit state (docs/storage.md): each replica counts locally and, every
-- sync interval, writes its count per key and fixed window here and reads
-- the others'. One row per (key, window, replica); count is the replica's
-- total in that window (passed plus reserved), and seq orders one replica's
-- writes, so a late or repeated write never replaces a newer one. Rows are deleted
-- once their window can no longer matter (expires_at, unix microseconds).
-- UNLOGGED: counts are worth no WAL; after a crash the table is empty and
-- limits start afresh.

CREATE UNLOGGED TABLE rate_counts (
    key           TEXT   COLLATE "C" NOT NULL,
    window_start  BIGINT NOT NULL,  -- unix microseconds
    replica       TEXT   COLLATE "C" NOT NULL,
    count         BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (key, window_start, replica)
);

CREATE INDEX rate_counts_expires_at ON rate_counts (expires_at);
