package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/store"
)

// Bounds of the decisions page.
const (
	// pageRows is how many rows the page starts with.
	pageRows = 100
	// scanPages and scanPageSize bound how much of the trail one page
	// reads to find them (the reason, protocol and tool filters are
	// applied after the store's).
	scanPages, scanPageSize = 5, 200
	// maxFilterLen bounds each filter's text.
	maxFilterLen = 256
	// streamWriteTimeout and streamHeartbeat are as /admin/audit/stream's.
	streamWriteTimeout = 30 * time.Second
	streamHeartbeat    = 15 * time.Second
)

// filters are the decisions page's query parameters, as typed.
type filters struct {
	Agent, Decision, Reason, Action, Protocol, Tool, From, To string
}

// filterParams are the parameters the page and its stream take.
var filterParams = []string{"agent", "decision", "reason", "action", "protocol", "tool", "from", "to"}

// errFilter is a filter the page refuses; its text says which and why.
type errFilter string

func (e errFilter) Error() string { return string(e) }

// readFilters reads the query: known parameters once each, bounded text,
// times as RFC 3339 or a browser's datetime-local (UTC). extra names one
// more parameter the caller reads.
func (c *Console) readFilters(ctx context.Context, r *http.Request, extra string) (filters, store.AuditFilter, url.Values, error) {
	var f filters
	var sf store.AuditFilter
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return f, sf, nil, errFilter("the query string does not parse")
	}
	for k, vs := range q {
		known := k == extra
		for _, p := range filterParams {
			known = known || p == k
		}
		switch {
		case !known:
			return f, sf, nil, errFilter("unknown query parameter " + strconv.Quote(k))
		case len(vs) > 1:
			return f, sf, nil, errFilter("query parameter " + strconv.Quote(k) + " is given more than once")
		case edge.CheckText(vs[0], maxFilterLen) != nil:
			return f, sf, nil, errFilter(k + ": too long, not UTF-8, or holds a control character")
		}
	}
	f = filters{Agent: q.Get("agent"), Decision: q.Get("decision"), Reason: q.Get("reason"), Action: q.Get("action"),
		Protocol: q.Get("protocol"), Tool: q.Get("tool"), From: q.Get("from"), To: q.Get("to")}
	if f.Decision != "" && f.Decision != "allow" && f.Decision != "deny" {
		return f, sf, nil, errFilter("decision: expected allow or deny")
	}
	sf = store.AuditFilter{Action: f.Action, Decision: f.Decision}
	for _, t := range []struct {
		name, v string
		dst     *time.Time
	}{{"from", f.From, &sf.From}, {"to", f.To, &sf.To}} {
		if t.v == "" {
			continue
		}
		var perr error
		if *t.dst, perr = time.Parse(time.RFC3339Nano, t.v); perr != nil {
			if *t.dst, perr = time.Parse("2006-01-02T15:04", t.v); perr != nil {
				return f, sf, nil, errFilter(t.name + ": expected a time like 2026-03-02T10:00 (UTC) or RFC 3339")
			}
		}
	}
	if f.Agent != "" {
		// A name or an id, as the admin API reads it.
		sf.AgentID = f.Agent
		a, err := c.cfg.Agents.GetAgentByName(ctx, f.Agent)
		switch {
		case err == nil:
			sf.AgentID = a.ID
		case !errors.Is(err, identity.ErrNotFound):
			return f, sf, nil, err
		}
	}
	return f, sf, q, nil
}

// match applies the filters the store does not.
func (f filters) match(r *audit.Record) bool {
	if f.Reason != "" && r.Reason != f.Reason {
		return false
	}
	if f.Protocol != "" && (r.Call == nil || r.Call.Protocol != f.Protocol) {
		return false
	}
	if f.Tool != "" && (r.Call == nil || r.Call.Name != f.Tool) {
		return false
	}
	return true
}

// row is one decision as the table shows it (and the stream sends it).
type row struct {
	ID       string `json:"id"`
	Time     string `json:"time"`
	Agent    string `json:"agent"`
	Action   string `json:"action"`
	Resource string `json:"resource"`
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	Call     string `json:"call"` // protocol/tool
	TraceID  string `json:"traceId"`
}

func newRow(r *audit.Record) row {
	out := row{ID: r.ID, Time: r.Timestamp.UTC().Format("2006-01-02 15:04:05.000"), Agent: r.AgentName, Action: r.Action,
		Resource: r.Resource, Decision: r.Decision, Reason: r.Reason, TraceID: r.TraceID}
	if out.Agent == "" {
		out.Agent = r.AgentID
	}
	if r.Call != nil {
		out.Call = r.Call.Protocol
		if r.Call.Name != "" {
			out.Call += "/" + r.Call.Name
		}
	}
	return out
}

// decisionsData is the decisions page.
type decisionsData struct {
	Filters filters
	Rows    []row
	More    bool   // the page stopped before the trail's end
	Stream  string // the live stream's URL, resuming where the rows end
}

// decisions is GET /ui/decisions: the newest matching decisions, then live.
func (c *Console) decisions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, sf, q, err := c.readFilters(ctx, r, "")
	if c.filterError(w, r, err) {
		return
	}
	// Where the stream picks up: every chain's end, read before the
	// rows, so nothing the rows miss is missed by the stream (what both
	// show, the page drops by id).
	cur, err := c.cfg.Audit.FollowFromNow(ctx)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d := decisionsData{Filters: f, Rows: []row{}}
	sf.Limit = scanPageSize
	for i := 0; ; i++ {
		page, err := c.cfg.Audit.QueryAudit(ctx, sf)
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		for j := range page.Records {
			if len(d.Rows) == pageRows {
				d.More = true
				break
			}
			if f.match(&page.Records[j]) {
				d.Rows = append(d.Rows, newRow(&page.Records[j]))
			}
		}
		if d.More || page.Next == "" {
			break
		}
		if i == scanPages-1 {
			d.More = true // bounded: narrow the filters to look further
			break
		}
		sf.Before = page.Next
	}
	q.Set("after", cur.Encode())
	d.Stream = "/ui/decisions/stream?" + q.Encode()
	c.render(w, r, http.StatusOK, "decisions", view{Title: "Decisions", Active: "decisions", Data: d})
}

// stream is GET /ui/decisions/stream: the matching decisions as they are
// written, as server-sent events (the store's follow, as
// /admin/audit/stream). Each event's id is the cursor after it, so a
// reconnecting EventSource (Last-Event-ID) resumes without a gap.
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, sf, q, err := c.readFilters(ctx, r, "after")
	if c.filterError(w, r, err) {
		return
	}
	var cur store.FollowCursor
	after := q.Get("after")
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		after = last
	}
	if after != "" {
		if cur, err = store.DecodeFollowCursor(after); err != nil {
			c.problem(w, r, http.StatusBadRequest, "Bad request", "after: not a cursor MeshGuard gave")
			return
		}
	} else if cur, err = c.cfg.Audit.FollowFromNow(ctx); err != nil {
		c.storeError(w, r, err)
		return
	}
	s, _ := ctx.Value(sessionKey{}).(session)
	if !c.takeStream(s) {
		c.problem(w, r, http.StatusServiceUnavailable, "Too many live views", "Close another console tab and reload.")
		return
	}
	defer c.dropStream(s)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(c.cfg.FollowPoll)
	defer tick.Stop()
	quiet := time.Now()
	// The stream ends with its session: an open view must not outlive the
	// sign-in that opened it.
	for c.cfg.Now().Before(s.expires) {
		err := c.cfg.Audit.FollowAudit(ctx, sf, &cur, func(rec audit.Record, fc *store.FollowCursor) error {
			if !f.match(&rec) {
				return nil
			}
			b, err := json.Marshal(newRow(&rec))
			if err != nil {
				return err
			}
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			quiet = time.Now()
			_, err = w.Write([]byte("id: " + fc.Encode() + "\nevent: decision\ndata: " + string(b) + "\n\n"))
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("console: a live stream ended", "error", err)
			}
			return
		}
		if time.Since(quiet) > streamHeartbeat {
			quiet = time.Now()
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := w.Write([]byte(": alive\n\n")); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// takeStream takes a slot for a stream of s: one of MaxStreams, and one
// of the session's MaxStreamsPerSession. False if either is full.
func (c *Console) takeStream(s session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perSession[s.id] >= MaxStreamsPerSession {
		return false
	}
	select {
	case c.streams <- struct{}{}:
	default:
		return false
	}
	c.perSession[s.id]++
	return true
}

// dropStream gives back the slots takeStream took.
func (c *Console) dropStream(s session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	<-c.streams
	if c.perSession[s.id]--; c.perSession[s.id] <= 0 {
		delete(c.perSession, s.id)
	}
}

// filterError answers a refused filter (400) or a failure (500); false if
// there is none.
func (c *Console) filterError(w http.ResponseWriter, r *http.Request, err error) bool {
	var fe errFilter
	switch {
	case err == nil:
		return false
	case errors.As(err, &fe):
		c.problem(w, r, http.StatusBadRequest, "Bad filter", fe.Error())
	default:
		c.storeError(w, r, err)
	}
	return true
}

func (c *Console) storeError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console: reading the store", "path", r.URL.Path, "error", err)
	c.problem(w, r, http.StatusInternalServerError, "Internal error", "MeshGuard could not read its store; see the server log.")
}
