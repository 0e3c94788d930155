package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/store"
)

// AuditLog is the stored audit trail the audit endpoints read (store.SQLite).
type AuditLog interface {
	QueryAudit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error)
	ScanAuditFiltered(ctx context.Context, f store.AuditFilter, fn func(r audit.Record, cursor string) error) error
	AuditStats(ctx context.Context, from, to time.Time) (audit.Stats, error)
	AuditDeadLetters(ctx context.Context, limit int, after int64, oldestFirst bool) (store.DeadLetterPage, error)
	FollowFromNow(ctx context.Context) (store.FollowCursor, error)
	FollowAudit(ctx context.Context, f store.AuditFilter, cur *store.FollowCursor, fn func(r audit.Record, cur *store.FollowCursor) error) error
	audit.Chains
}

var (
	_ AuditLog = (*store.SQLite)(nil)
	_ AuditLog = (*store.Postgres)(nil)
)

// Audit endpoint limits.
const (
	// MaxTraceRecords bounds GET /admin/audit/trace/{traceId}.
	MaxTraceRecords = 10_000
	// MaxStatsPeriod bounds GET /admin/audit/stats?period=.
	MaxStatsPeriod = 366 * 24 * time.Hour
)

// traceIDPattern is a W3C trace id as MeshGuard writes it.
var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// parseTime reads an RFC 3339 time.
func parseTime(name, v string) (time.Time, string) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, name + ": " + strconv.Quote(v) + " is not an RFC 3339 time (like 2026-03-02T10:00:00Z)"
	}
	return t, ""
}

// auditFilter reads the filter parameters common to the audit endpoints.
func (a *API) auditFilter(ctx context.Context, p map[string]string) (store.AuditFilter, string, error) {
	f := store.AuditFilter{Action: p["action"], Decision: p["decision"], TraceID: p["traceId"]}
	for _, name := range []string{"agent", "action"} {
		// What no record can hold: refused here rather than by the
		// database (PostgreSQL rejects NUL and invalid UTF-8 with an error).
		if v := p[name]; edge.CheckText(v, len(v)) != nil {
			return f, name + ": not valid UTF-8, or holds a control character", nil
		}
	}
	if f.Decision != "" && f.Decision != "allow" && f.Decision != "deny" {
		return f, "decision: " + strconv.Quote(f.Decision) + ": expected allow or deny", nil
	}
	if f.TraceID != "" && !traceIDPattern.MatchString(f.TraceID) {
		return f, "traceId: expected 32 lower-case hex digits", nil
	}
	switch p["shadow"] {
	case "", "false":
	case "true":
		f.Shadow = true // only the records carrying a shadow answer
	default:
		return f, "shadow: " + strconv.Quote(p["shadow"]) + ": expected true or false", nil
	}
	if agent := p["agent"]; agent != "" {
		// An id, or a name: records keep the id, which a name resolves to
		// even after the agent was revoked.
		f.AgentID = agent
		found, err := a.cfg.Store.GetAgentByName(ctx, agent)
		switch {
		case err == nil:
			f.AgentID = found.ID
		case !errors.Is(err, identity.ErrNotFound):
			return f, "", fmt.Errorf("resolving agent %q: %w", agent, err)
		}
	}
	var msg string
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := p[t.name]; v != "" {
			if *t.dst, msg = parseTime(t.name, v); msg != "" {
				return f, msg, nil
			}
		}
	}
	if v := p["limit"]; v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > store.MaxAuditLimit {
			// A bad parameter is the caller's (a 400 message), not a failure.
			return f, "limit: " + strconv.Quote(v) + ": expected a whole number from 1 to " + strconv.Itoa(store.MaxAuditLimit), nil //nolint:nilerr
		}
		f.Limit = n
	}
	return f, "", nil
}

// auditRequest reads the query of an endpoint taking the audit filter and
// the extra parameter; a bad query is answered with 400 and ok false.
func (a *API) auditRequest(w http.ResponseWriter, r *http.Request, extra string) (map[string]string, store.AuditFilter, bool) {
	p, msg := queryParams(r, "agent", "action", "decision", "from", "to", "traceId", "limit", "shadow", extra)
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return nil, store.AuditFilter{}, false
	}
	f, msg, err := a.auditFilter(r.Context(), p)
	if err != nil {
		a.internalError(w, r, "reading the audit filter", err)
		return nil, store.AuditFilter{}, false
	}
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return nil, store.AuditFilter{}, false
	}
	return p, f, true
}

// queryAudit is GET /admin/audit: a page of records, newest first.
func (a *API) queryAudit(w http.ResponseWriter, r *http.Request) {
	p, f, ok := a.auditRequest(w, r, "cursor")
	if !ok {
		return
	}
	f.Before = p["cursor"]
	// Where a follow picks up from this page: every chain's end, read
	// before the page, so nothing the page misses is missed by the follow
	// (what both show, the follower drops by id).
	var follow string
	if f.Before == "" {
		cur, err := a.cfg.Audit.FollowFromNow(r.Context())
		if err != nil {
			a.storeError(w, r, "querying the audit trail", err)
			return
		}
		follow = cur.Encode()
	}
	page, err := a.cfg.Audit.QueryAudit(r.Context(), f)
	if err != nil {
		a.storeError(w, r, "querying the audit trail", err)
		return
	}
	if page.Records == nil {
		page.Records = []audit.Record{}
	}
	httpjson.WriteJSON(w, http.StatusOK, api.AuditPage{Records: page.Records, NextCursor: page.Next, NewestCursor: page.Newest, FollowCursor: follow})
}

// auditStats is GET /admin/audit/stats?period=24h (or from and to).
func (a *API) auditStats(w http.ResponseWriter, r *http.Request) {
	p, msg := queryParams(r, "period", "from", "to")
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	to := a.cfg.Now()
	if v := p["to"]; v != "" {
		if to, msg = parseTime("to", v); msg != "" {
			httpjson.BadRequest(w, "%s", msg)
			return
		}
	}
	from := to.Add(-24 * time.Hour)
	switch {
	case p["from"] != "" && p["period"] != "":
		httpjson.BadRequest(w, "give period or from, not both")
		return
	case p["from"] != "":
		if from, msg = parseTime("from", p["from"]); msg != "" {
			httpjson.BadRequest(w, "%s", msg)
			return
		}
	case p["period"] != "":
		d, msg := parsePeriod(p["period"])
		if msg != "" {
			httpjson.BadRequest(w, "%s", msg)
			return
		}
		from = to.Add(-d)
	}
	st, err := a.cfg.Audit.AuditStats(r.Context(), from, to)
	if err != nil {
		a.storeError(w, r, "counting audit records", err)
		return
	}
	for i := range st.Agents {
		if ag, err := a.cfg.Store.GetAgent(r.Context(), st.Agents[i].Key); err == nil {
			st.Agents[i].Name = ag.Name
		} else if !errors.Is(err, identity.ErrNotFound) {
			a.internalError(w, r, "naming the agents of the audit stats", err)
			return
		}
	}
	httpjson.WriteJSON(w, http.StatusOK, st)
}

// parsePeriod reads a period: a Go duration ("90m", "24h") or a whole
// number of hours ("24", as the CLI's --period takes).
func parsePeriod(v string) (time.Duration, string) {
	d, err := time.ParseDuration(v)
	if err != nil {
		h, herr := strconv.Atoi(v)
		if herr != nil {
			return 0, "period: " + strconv.Quote(v) + " is neither a duration (24h, 90m) nor a number of hours"
		}
		d = time.Duration(h) * time.Hour
	}
	if d <= 0 || d > MaxStatsPeriod {
		return 0, "period: " + strconv.Quote(v) + ": expected more than 0 and at most " + MaxStatsPeriod.String()
	}
	return d, ""
}

// auditTrace is GET /admin/audit/trace/{traceId}: every record of one trace,
// in the order they were written.
func (a *API) auditTrace(w http.ResponseWriter, r *http.Request) {
	if _, msg := queryParams(r); msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	id := r.PathValue("traceId")
	if !traceIDPattern.MatchString(id) {
		httpjson.BadRequest(w, "trace id %q: expected 32 lower-case hex digits", id)
		return
	}
	out := api.AuditTrace{TraceID: id, Records: []audit.Record{}}
	err := a.cfg.Audit.ScanAuditFiltered(r.Context(), store.AuditFilter{TraceID: id, Limit: MaxTraceRecords + 1},
		func(rec audit.Record, _ string) error {
			if len(out.Records) == MaxTraceRecords {
				out.Truncated = true
				return nil
			}
			out.Records = append(out.Records, rec)
			return nil
		})
	if err != nil {
		a.storeError(w, r, "reading a trace's audit records", err)
		return
	}
	if len(out.Records) == 0 {
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no audit records with trace id %s", id)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// verifyAudit is GET /admin/audit/verify: walks every stored chain from
// its retention anchor and reports the first broken record, in one answer
// (bound by the request's time; POST streams, for trails of any size).
func (a *API) verifyAudit(w http.ResponseWriter, r *http.Request) {
	if _, msg := queryParams(r); msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	rep, err := audit.Verify(r.Context(), a.cfg.Audit, audit.VerifyOptions{})
	out, err := verifyResult(rep, err)
	if err != nil {
		a.internalError(w, r, "verifying the audit trail", err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// verifyResult turns Verify's answer into the API's; err is what is
// neither intact nor broken (a store failure; a cancellation is Cancelled).
func verifyResult(rep audit.Report, err error) (api.AuditVerifyResult, error) {
	out := api.AuditVerifyResult{OK: err == nil, Verified: rep.Verified, Chains: rep.Chains, Anchored: rep.Anchored,
		FromCheckpoint: rep.FromCheckpoint, Notes: rep.Notes, Gaps: rep.Gaps, DeadLetters: rep.DeadLetters}
	var b *audit.Break
	switch {
	case errors.Is(err, audit.ErrGap), errors.Is(err, audit.ErrDeadLettered):
	case errors.As(err, &b):
		out.Break = &api.AuditBreak{Chain: b.Chain, Index: b.Index, ID: b.ID, Why: b.Why}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		out.Cancelled = true
	case err != nil:
		return out, err
	}
	return out, nil
}
