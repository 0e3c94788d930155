package engine

import (
	"context"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// Reissue gives r the decision prior was, as a decision of its own: a new
// id, time, trace and span, recorded like any other. It is for a caller
// that cached prior (the wasm filter, package filterdecider) and
// guarantees that r is identical to prior's request in everything the
// decision read and that nothing it read has changed since: the engine
// does not decide again. The record is r's (its path, host, source
// address), with prior's outcome and inputs. Only allows are reissued:
// a denial's extra trace (DenialTracer) is not repeated here.
//
// When prior carries its record (KeepRecord), the record is a copy of it
// with only the fields that differ from one request to the next set
// (reissued): the caller's guarantee covers everything else the record
// is built from. prior is only read.
func (e *Engine) Reissue(ctx context.Context, r *Request, prior *Decision) (d Decision, err error) {
	now := e.cfg.Now()
	d = *prior
	d.SpanID, d.TraceSampled, d.record = "", false, nil
	ctx, span := e.open(ctx, r, &d, now)
	defer func() { e.close(span, r, &d, err, now) }()
	if e.cfg.Recorder != nil {
		var rec audit.Record
		if prior.record != nil {
			rec = *prior.record
			reissued(&rec, &d, e.cfg.Now().Sub(now))
		} else {
			rec = auditRecord(r, &d, e.cfg.Now().Sub(now))
		}
		if err := e.record(ctx, rec); err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}

// KeepRecord keeps with d (a decision to be cached and later reissued)
// its audit record for r, so Reissue copies it instead of building it
// again: building it (the ids, the request's fields made recordable, the
// inputs) was a third of a cached request's time in the wasm filter
// (docs/performance.md). The record's slices, maps and inputs are then
// shared by every reissued record; nothing downstream writes them.
func (e *Engine) KeepRecord(r *Request, d *Decision) {
	rec := auditRecord(r, d, 0)
	d.record = &rec
}

// reissued sets in rec, a copy of a kept record, what is d's own: its
// ids, time, trace and span, and the latency.
func reissued(rec *audit.Record, d *Decision, latency time.Duration) {
	rec.ID, rec.DecisionID = "aud_"+d.ID[len("dec_"):], d.ID
	rec.Timestamp, rec.TraceID, rec.SpanID = d.Time, d.TraceID, d.SpanID
	rec.LatencyUs = latency.Microseconds()
}
