package admin

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/store"
)

// Streaming answers: export and follow write as they read, so neither
// holds a whole trail in memory. Each write pushes the write deadline out,
// so a long export is not cut off by the server's timeouts while a client
// that stops reading still is.
const (
	streamWriteTimeout = 30 * time.Second
	// followPoll is how often a follow looks for new records. Polling the
	// store, not listening to this replica's writer, shows the records of
	// every replica sharing the database.
	followPoll = 250 * time.Millisecond
	// followHeartbeat is how often a quiet follow writes an empty line, so
	// proxies and the client see the stream is alive.
	followHeartbeat = 15 * time.Second
)

// exportAudit is GET /admin/audit/export?format=csv|json&…filters: every
// matching record, oldest first. JSON is an array, one record a line.
func (a *API) exportAudit(w http.ResponseWriter, r *http.Request) {
	p, f, ok := a.auditRequest(w, r, "format")
	if !ok {
		return
	}
	format := p["format"]
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		httpjson.BadRequest(w, "format: %q: expected csv or json", format)
		return
	}
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 64<<10)
	var cw *csv.Writer
	started := false
	// begin answers 200 and opens the document: at the first record, so a
	// store that fails at once still gets a proper error status.
	begin := func() {
		if started {
			return
		}
		started = true
		name := "meshguard-audit-" + a.cfg.Now().UTC().Format("20060102T150405Z") + "." + format
		if format == "csv" {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.WriteHeader(http.StatusOK)
		if format == "csv" {
			cw = csv.NewWriter(bw)
			_ = cw.Write(csvHeader)
		} else {
			_, _ = bw.WriteString("[")
		}
	}
	n := 0
	err := a.cfg.Audit.ScanAuditFiltered(r.Context(), f, func(rec audit.Record, _ string) error {
		begin()
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if format == "csv" {
			n++
			return cw.Write(csvRow(&rec))
		}
		b, err := json.Marshal(&rec)
		if err != nil {
			return err
		}
		if n > 0 {
			_ = bw.WriteByte(',')
		}
		n++
		_ = bw.WriteByte('\n')
		_, err = bw.Write(b)
		return err
	})
	switch {
	case err != nil && !started:
		a.storeError(w, r, "exporting the audit trail", err)
		return
	case err != nil:
		// Too late for a status: cut the stream short so the client sees
		// a truncated body rather than a well-formed partial export.
		a.log.Error("admin: audit export failed midway", "records", n, "error", err)
		panic(http.ErrAbortHandler)
	}
	begin()
	if format == "csv" {
		cw.Flush()
	} else {
		_, _ = bw.WriteString("\n]\n")
	}
	_ = bw.Flush()
}

var csvHeader = []string{"id", "timestamp", "traceId", "spanId", "decisionId", "agentId", "agentName", "trustTier",
	"action", "resource", "method", "path", "host", "decision", "status", "reason", "policy", "rule", "chain",
	"delegationDepth", "source", "sourceAddress", "policyRevision", "latencyUs", "context", "mode", "prevHash", "hash"}

func csvRow(r *audit.Record) []string {
	ctx := ""
	if r.Context != nil {
		if b, err := json.Marshal(r.Context); err == nil {
			ctx = string(b)
		}
	}
	row := []string{r.ID, r.Timestamp.UTC().Format(time.RFC3339Nano), r.TraceID, r.SpanID, r.DecisionID, r.AgentID,
		r.AgentName, r.TrustTier, r.Action, r.Resource, r.Method, r.Path, r.Host,
		r.Decision, strconv.Itoa(r.Status), r.Reason, r.Policy, r.Rule, strings.Join(r.Chain, ">"),
		strconv.Itoa(r.DelegationDepth), r.Source, r.SourceAddress, r.PolicyRevision, strconv.FormatInt(r.LatencyUs, 10),
		ctx, r.Mode, r.PrevHash, r.Hash}
	for i := range row {
		row[i] = csvSafe(row[i])
	}
	return row
}

// csvSafe defuses spreadsheet formulas in every cell: paths, hosts,
// methods and contexts come from callers, and a cell starting with
// = + - @ would run when an operator opens the export (OWASP CSV
// injection).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// followAudit is GET /admin/audit/stream?after=CURSOR&…filters: the records
// written after the cursor (or from now, without one), as they are
// written, one JSON object a line, until the client goes away. The
// cursor of each record is in its "cursor" field, to resume from. It
// keeps one position per chain (store.FollowCursor), so a replica's
// batch that commits after a later-numbered one of another replica is
// still delivered, once.
func (a *API) followAudit(w http.ResponseWriter, r *http.Request) {
	p, f, ok := a.auditRequest(w, r, "after")
	if !ok {
		return
	}
	if f.Limit != 0 {
		httpjson.BadRequest(w, "limit: a stream has no limit; use GET /admin/audit for a page")
		return
	}
	ctx := r.Context()
	var cur store.FollowCursor
	var err error
	if after := p["after"]; after != "" {
		if cur, err = store.DecodeFollowCursor(after); err != nil {
			httpjson.BadRequest(w, "after: %v", err)
			return
		}
	} else if cur, err = a.cfg.Audit.FollowFromNow(ctx); err != nil {
		a.storeError(w, r, "following the audit trail", err)
		return
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	started := false
	begin := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
		}
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	quietSince := time.Now()
	for {
		wrote := false
		err := a.cfg.Audit.FollowAudit(ctx, f, &cur, func(rec audit.Record, c *store.FollowCursor) error {
			begin()
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			wrote = true
			return enc.Encode(followLine{Record: rec, Cursor: c.Encode()})
		})
		switch {
		case err != nil && !started:
			a.storeError(w, r, "following the audit trail", err)
			return
		case err != nil:
			if ctx.Err() == nil {
				a.log.Warn("admin: audit follow ended", "error", err)
			}
			return
		}
		begin()
		if wrote {
			quietSince = time.Now()
		} else if time.Since(quietSince) > followHeartbeat {
			quietSince = time.Now()
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := w.Write([]byte("\n")); err != nil {
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

// followLine is one line of a follow: the record and where to resume.
type followLine struct {
	audit.Record
	Cursor string `json:"cursor"`
}
