-- What a person deciding an approval is shown of the rest of what it is
-- bound to (docs/governance.md "What the approver is shown"), redacted by
-- the audit trail's rule: shown_query is the proxied request's query string
-- with redacted parameters' values [redacted] ('' when none); shown_context
-- the decision's context as a JSON object ('' when empty); params an A2A
-- request's params as arguments are recorded ('' unless AUDIT_ARGUMENTS);
-- params_digest their digest; shown_omitted a JSON array of the fields too
-- large to show ('' when none). Approvals raised before this migration
-- show none of them.
ALTER TABLE approvals ADD COLUMN shown_query TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN shown_context TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN params TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN params_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN shown_omitted TEXT NOT NULL DEFAULT '';

-- Retention deletes approvals by their expiry (APPROVAL_RETENTION).
CREATE INDEX approvals_expires ON approvals (expires_at);
