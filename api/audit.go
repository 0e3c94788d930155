package api

import (
	"time"

	"github.com/meshguard/meshguard/audit"
)

// The bodies of the audit trail's endpoints (docs/audit.md).

// AuditPage is GET /admin/audit's answer: records newest first.
// NextCursor fetches older records; NewestCursor follows newer ones.
type AuditPage struct {
	Records      []audit.Record `json:"records"`
	NextCursor   string         `json:"nextCursor,omitempty"`
	NewestCursor string         `json:"newestCursor,omitempty"`
	// FollowCursor (first pages only) is where FollowAudit picks up after
	// this page: every chain's end, read just before the page, so a record
	// may be both in the page and followed (drop it by id), never in
	// neither.
	FollowCursor string `json:"followCursor,omitempty"`
}

// AuditTrace is GET /admin/audit/trace/{traceId}'s answer: the trace's
// records in the order they were written.
type AuditTrace struct {
	TraceID   string         `json:"traceId"`
	Records   []audit.Record `json:"records"`
	Truncated bool           `json:"truncated,omitempty"`
}

// AuditVerifyResult is GET /admin/audit/verify's answer.
type AuditVerifyResult struct {
	OK       bool  `json:"ok"`
	Verified int64 `json:"verified"` // records that verified before the break, or all
	Chains   int   `json:"chains"`   // hash chains: one per writer (replica) on PostgreSQL
	Anchored int   `json:"anchored"` // chains whose walk started at a retention anchor
	// FromCheckpoint is how many chains were verified from a checkpoint
	// (incremental) rather than from their start.
	FromCheckpoint int         `json:"fromCheckpoint,omitempty"`
	Break          *AuditBreak `json:"break,omitempty"`
	// Checkpoint is the checkpoint verified against, when there was one.
	Checkpoint *AuditCheckpointUsed `json:"checkpoint,omitempty"`
	Notes      []string             `json:"notes,omitempty"`
	// Gaps are records the store lost after committing them (ok is
	// false): how many, and their time span.
	Gaps []audit.Gap `json:"gaps,omitempty"`
	// DeadLetters are records the store refused as data, kept outside
	// the chains (ok is false): how many, the first ids, their time span.
	DeadLetters *audit.DeadLetterSummary `json:"deadLetters,omitempty"`
	// Cancelled says the verification stopped before the end (the server
	// is shutting down): neither intact nor broken.
	Cancelled bool `json:"cancelled,omitempty"`
	// Error says the verification could not finish for another reason
	// (the store failed): neither intact nor broken.
	Error string `json:"error,omitempty"`
}

// AuditCheckpointUsed says which checkpoint a verification started from.
type AuditCheckpointUsed struct {
	Time time.Time `json:"time"`
	Key  string    `json:"key"`
	// SignedHere is true when this server's key signed it.
	SignedHere bool `json:"signedHere"`
}

// AuditVerifyRequest is POST /admin/audit/verify's body. Without a
// checkpoint every chain is verified from its start (or retention anchor).
type AuditVerifyRequest struct {
	// Checkpoint is a checkpoint file's contents (`meshguard audit
	// checkpoint`'s JSON, or a bare signed note): the trail must still
	// reach it, and is verified from it.
	Checkpoint string `json:"checkpoint,omitempty"`
	// Key pins the verifier key the checkpoint must be signed with.
	Key string `json:"key,omitempty"`
	// Incremental verifies from the last checkpoint the server signed.
	Incremental bool `json:"incremental,omitempty"`
}

// AuditVerifyLine is one line of the verification stream: progress, or
// the result (the last line).
type AuditVerifyLine struct {
	Verified int64              `json:"verified"`
	Result   *AuditVerifyResult `json:"result,omitempty"`
}

// AuditBreak is the first record where a chain does not hold: its
// position in its chain's walk (from 0), its id (empty when records are
// missing from the chain's end), and why.
type AuditBreak struct {
	Chain string `json:"chain,omitempty"`
	Index int    `json:"index"`
	ID    string `json:"id"`
	Why   string `json:"why"`
}

// AuditLine is one line of FollowAudit: a record and the cursor to resume
// after it.
type AuditLine struct {
	audit.Record
	Cursor string `json:"cursor"`
}

// AuditDeadLetterPage is GET /admin/audit/deadletter's answer: records the
// store refused as data, kept outside the hash chains, newest first.
type AuditDeadLetterPage struct {
	DeadLetters []audit.DeadLetter `json:"deadLetters"`
	NextCursor  string             `json:"nextCursor,omitempty"`
}
