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

	"github.com/meshguard/meshguard/api"
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
	// Shadow keeps only the records carrying a shadow answer.
	Shadow bool
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
	if f.Shadow {
		q.Set("shadow", "true")
	}
	return q
}

// QueryAudit returns one page of records, newest first.
func (c *Client) QueryAudit(ctx context.Context, f AuditFilter) (api.AuditPage, error) {
	var out api.AuditPage
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/admin/audit", query: f.values(), auth: authAdmin, out: &out})
	return out, err
}

// AuditDeadLetters lists up to limit dead letters (0: the server's
// default), older than cursor if set.
func (c *Client) AuditDeadLetters(ctx context.Context, limit int, cursor string) (api.AuditDeadLetterPage, error) {
	var out api.AuditDeadLetterPage
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
func (c *Client) AuditTrace(ctx context.Context, traceID string) (api.AuditTrace, error) {
	var out api.AuditTrace
	err := c.doJSON(ctx, http.MethodGet, "/admin/audit/trace/"+seg(traceID), authAdmin, nil, &out)
	return out, err
}

// VerifyAudit has the server walk the stored hash chain.
func (c *Client) VerifyAudit(ctx context.Context) (api.AuditVerifyResult, error) {
	var out api.AuditVerifyResult
	err := c.doJSON(ctx, http.MethodGet, "/admin/audit/verify", authAdmin, nil, &out)
	return out, err
}

// VerifyAuditStream has the server verify the trail, calling progress with
// the records verified so far as it goes; it is bound by ctx only, not by
// the client's request timeout, so a trail of any size can be verified.
func (c *Client) VerifyAuditStream(ctx context.Context, req api.AuditVerifyRequest, progress func(verified int64)) (api.AuditVerifyResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return api.AuditVerifyResult{}, err
	}
	var out *api.AuditVerifyResult
	err = c.stream(ctx, call{method: http.MethodPost, path: "/admin/audit/verify", auth: authAdmin, body: body, contentType: "application/json"},
		func(r io.Reader) error {
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if len(bytes.TrimSpace(sc.Bytes())) == 0 {
					continue // heartbeat
				}
				var line api.AuditVerifyLine
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
		return api.AuditVerifyResult{}, err
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
func (c *Client) FollowAudit(ctx context.Context, f AuditFilter, after string, fn func(api.AuditLine) error) error {
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
			var line api.AuditLine
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
