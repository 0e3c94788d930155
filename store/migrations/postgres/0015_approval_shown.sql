-- What a person deciding an approval is shown, as in migrations/sqlite/0012
-- (which says what each column holds).
ALTER TABLE approvals ADD COLUMN shown_query TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN shown_context TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN params TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN params_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN shown_omitted TEXT NOT NULL DEFAULT '';

-- Retention deletes approvals by their expiry (APPROVAL_RETENTION).
CREATE INDEX approvals_expires ON approvals (expires_at);
