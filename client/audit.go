package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// --- Audit trail (docs/audit.md) ------------------------------------------

// AuditFilter selects records for QueryAudit, ExportAudit and FollowAudit.
// Zero fields do not filter. Agent is an agent id or name.
type AuditFilter struct {
	Agent    string
	Action   string // exact, or a prefix ending in '*'
	Decision string // allow or deny
	TraceID  string
	From, To time.Time
	Limit    int    // QueryAudit only
	Cursor   string // QueryAudit: the page after this cursor (older records)
}

func (f AuditFilter) values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"agent": f.Agent, "action": f.Action, "decision": f.Decision, "traceId": f.TraceID, "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

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

// QueryAudit returns one page of records, newest first.
func (c *Client) QueryAudit(ctx context.Context, f AuditFilter) (AuditPage, error) {
	var out AuditPage
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/admin/audit", query: f.values(), auth: authAdmin, out: &out})
	return out, err
}

// AuditDeadLetterPage is GET /admin/audit/deadletter's answer: records the
// store refused as data, kept outside the hash chains, newest first.
type AuditDeadLetterPage struct {
	DeadLetters []audit.DeadLetter `json:"deadLetters"`
	NextCursor  string             `json:"nextCursor,omitempty"`
}

// AuditDeadLetters lists up to limit dead letters (0: the server's
// default), older than cursor if set.
func (c *Client) AuditDeadLetters(ctx context.Context, limit int, cursor string) (AuditDeadLetterPage, error) {
	var out AuditDeadLetterPage
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/admin/audit/deadletter", query: q, auth: authAdmin, out: &out})
	return out, err
}

// AuditStats counts the records of the period ending now.
func (c *Client) AuditStats(ctx context.Context, period time.Duration) (audit.Stats, error) {
	var out audit.Stats
	q := url.Values{"period": {period.String()}}
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/admin/audit/stats", query: q, auth: authAdmin, out: &out})
	return out, err
}

// AuditTrace returns the records of one trace.
func (c *Client) AuditTrace(ctx context.Context, traceID string) (AuditTrace, error) {
	var out AuditTrace
	err := c.doJSON(ctx, http.MethodGet, "/admin/audit/trace/"+seg(traceID), authAdmin, nil, &out)
	return out, err
}

// VerifyAudit has the server walk the stored hash chain.
func (c *Client) VerifyAudit(ctx context.Context) (AuditVerifyResult, error) {
	var out AuditVerifyResult
	err := c.doJSON(ctx, http.MethodGet, "/admin/audit/verify", authAdmin, nil, &out)
	return out, err
}

// VerifyAuditStream has the server verify the trail, calling progress with
// the records verified so far as it goes; it is bound by ctx only, not by
// the client's request timeout, so a trail of any size can be verified.
func (c *Client) VerifyAuditStream(ctx context.Context, req AuditVerifyRequest, progress func(verified int64)) (AuditVerifyResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return AuditVerifyResult{}, err
	}
	var out *AuditVerifyResult
	err = c.stream(ctx, call{method: http.MethodPost, path: "/admin/audit/verify", auth: authAdmin, body: body, contentType: "application/json"},
		func(r io.Reader) error {
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if len(bytes.TrimSpace(sc.Bytes())) == 0 {
					continue // heartbeat
				}
				var line AuditVerifyLine
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					return fmt.Errorf("meshguard client: audit verification stream: %w", err)
				}
				if line.Result != nil {
					out = line.Result
					return nil
				}
				if progress != nil {
					progress(line.Verified)
				}
				if err := ctx.Err(); err != nil {
					return err // cancelled: not a result, whatever the server sends next
				}
			}
			if err := sc.Err(); err != nil {
				return err
			}
			return errors.New("meshguard client: the audit verification stream ended without a result")
		})
	if err != nil {
		return AuditVerifyResult{}, err
	}
	return *out, nil
}

// AuditCheckpoint has the server sign the trail's current heads.
func (c *Client) AuditCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	var out audit.Checkpoint
	err := c.doJSON(ctx, http.MethodGet, "/admin/audit/checkpoint", authAdmin, nil, &out)
	return out, err
}

// ExportAudit streams the matching records, oldest first, as csv or json
// into w. Limit and Cursor are not used.
func (c *Client) ExportAudit(ctx context.Context, f AuditFilter, format string, w io.Writer) error {
	f.Limit, f.Cursor = 0, ""
	q := f.values()
	q.Set("format", format)
	return c.stream(ctx, call{method: http.MethodGet, path: "/admin/audit/export", query: q, auth: authAdmin}, func(body io.Reader) error {
		_, err := io.Copy(w, body)
		return err
	})
}

// FollowAudit calls fn with each record written after the cursor (from
// now if empty), as the server writes them, until ctx ends (then it
// returns nil) or fn returns an error. Limit and Cursor of f are not used.
func (c *Client) FollowAudit(ctx context.Context, f AuditFilter, after string, fn func(AuditLine) error) error {
	f.Limit, f.Cursor = 0, ""
	q := f.values()
	if after != "" {
		q.Set("after", after)
	}
	err := c.stream(ctx, call{method: http.MethodGet, path: "/admin/audit/stream", query: q, auth: authAdmin}, func(body io.Reader) error {
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue // heartbeat
			}
			var line AuditLine
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				return fmt.Errorf("meshguard client: audit stream: %w", err)
			}
			if err := fn(line); err != nil {
				return err
			}
		}
		return sc.Err()
	})
	if ctx.Err() != nil {
		return nil //nolint:nilerr // a follow ends when its context does; the read error is that ending
	}
	return err
}
