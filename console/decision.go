package console

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/replay"
)

// traceIDPattern is a W3C trace id as MeshGuard writes it.
var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// maxIDLen bounds a record id in a path.
const maxIDLen = 128

// decisionData is the decision page.
type decisionData struct {
	Record   *audit.Record
	Call     string
	TraceURL string // the tracing backend's page of the trace, "" if none
	// Again is the record decided again against the set in force, with
	// its explanation; Cannot says why it could not be.
	Again    *policy.Decision
	Revision string
	Cannot   string
}

// decision is GET /ui/decisions/{id}: one record, its policy and rule, the
// explanation of deciding it again now, its chain and trace.
func (c *Console) decision(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if edge.CheckText(id, maxIDLen) != nil {
		c.notFound(w, r)
		return
	}
	rec, ok, err := c.cfg.Audit.AuditRecord(r.Context(), id)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	if !ok {
		c.notFound(w, r)
		return
	}
	d := decisionData{Record: &rec, Call: newRow(&rec).Call, TraceURL: c.traceURL(rec.TraceID)}
	// The explanation `policy test --verbose` gives, for the recorded
	// request: its input rebuilt as a replay does (replay.Input), decided
	// by the set in force with Explain on.
	if set := c.cfg.Policies.Current(); set == nil {
		d.Cannot = "no policy set is loaded"
	} else if in, err := replay.Input(set, &rec); err != nil {
		d.Cannot = strings.TrimPrefix(err.Error(), replay.ErrCannotDecide.Error()+": ")
		if !errors.Is(err, replay.ErrCannotDecide) {
			d.Cannot = "the record could not be read"
		}
	} else {
		in.Explain = true
		again := set.Evaluate(&in)
		d.Again, d.Revision = &again, set.Revision()
	}
	c.render(w, r, http.StatusOK, "decision", view{Title: "Decision " + rec.ID, Active: "decisions", Data: d})
}

// traceURL is the tracing backend's link for a trace id, "" without
// CONSOLE_TRACE_URL or a well-formed id. The id is checked (hex only) and
// path-escaped besides.
func (c *Console) traceURL(id string) string {
	if c.cfg.TraceURL == "" || !traceIDPattern.MatchString(id) {
		return ""
	}
	return strings.ReplaceAll(c.cfg.TraceURL, "{traceId}", pathEscape(id))
}
