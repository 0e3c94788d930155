package engine

import (
	"context"
	"time"

	"github.com/meshguard/meshguard/internal/edge"
)

// Reissue gives r the decision prior was, as a decision of its own: a new
// id, time, trace and span, recorded like any other. It is for a caller
// that cached prior (the wasm filter, package filterdecider) and
// guarantees that r is identical to prior's request in everything the
// decision read and that nothing it read has changed since: the engine
// does not decide again. The record is r's (its path, host, source
// address), with prior's outcome and inputs. Only allows are reissued:
// a denial's extra trace (DenialTracer) is not repeated here.
func (e *Engine) Reissue(ctx context.Context, r *Request, prior *Decision) (d Decision, err error) {
	now := e.cfg.Now()
	e.traceOfDelegation(r)
	d = *prior
	d.ID, d.Time, d.Source, d.TraceID, d.SpanID, d.TraceSampled = e.newID("dec_", 12, now), now, r.Source, r.TraceID, "", false
	if !edge.ValidTraceID(d.TraceID) {
		d.TraceID = e.newID("", 16, time.Time{})
	}
	ctx, span := e.startCheck(ctx, r, &d)
	defer func() {
		endCheck(span, r, &d, err)
		if e.cfg.Observer != nil {
			e.cfg.Observer.Decided(string(r.Source), d.Effect, e.cfg.Now().Sub(now))
		}
	}()
	if e.cfg.Recorder != nil {
		if err := e.record(ctx, auditRecord(r, &d, e.cfg.Now().Sub(now))); err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}
