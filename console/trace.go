package console

import (
	"net/http"
	"net/url"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// maxTraceRecords bounds the records one chain page draws.
const maxTraceRecords = 1000

func pathEscape(s string) string { return url.PathEscape(s) }

// traceData is the chain page.
type traceData struct {
	TraceID   string
	TraceURL  string
	Roots     []*audit.TraceNode
	Records   int
	Denied    int
	Truncated bool
}

// trace is GET /ui/traces/{traceId}: the delegation tree of one trace
// (audit.TraceTree, as `meshguard audit trace` prints it), denied
// decisions marked with why.
func (c *Console) trace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("traceId")
	if !traceIDPattern.MatchString(id) {
		c.problem(w, r, http.StatusBadRequest, "Bad trace id", "A trace id is 32 lower-case hex digits.")
		return
	}
	var rs []audit.Record
	d := traceData{TraceID: id, TraceURL: c.traceURL(id)}
	err := c.cfg.Audit.ScanAuditFiltered(r.Context(), store.AuditFilter{TraceID: id, Limit: maxTraceRecords + 1},
		func(rec audit.Record, _ string) error {
			if len(rs) == maxTraceRecords {
				d.Truncated = true
				return nil
			}
			if rec.Decision == "deny" {
				d.Denied++
			}
			rs = append(rs, rec)
			return nil
		})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	if len(rs) == 0 {
		c.problem(w, r, http.StatusNotFound, "No such trace", "No decision in the audit trail has trace id "+id+".")
		return
	}
	d.Roots, d.Records = audit.TraceTree(rs), len(rs)
	c.render(w, r, http.StatusOK, "trace", view{Title: "Chain of trace " + id, Active: "decisions", Data: d})
}
