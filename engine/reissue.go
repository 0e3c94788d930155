package engine

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/audit"
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
//
// When prior carries its record (KeepRecord), the record is a copy of it
// with only the fields that differ from one request to the next set
// (reissued): the caller's guarantee covers everything else the record
// is built from. prior is only read.
func (e *Engine) Reissue(ctx context.Context, r *Request, prior *Decision) (d Decision, err error) {
	now := e.cfg.Now()
	d = *prior
	d.SpanID, d.TraceSampled, d.record, d.traceparent = "", false, nil, ""
	var span trace.Span
	var auditID string
	if e.tracer == nil {
		span, auditID = noSpan, e.reissueIDs(r, &d, now)
	} else {
		ctx, span = e.open(ctx, r, &d, now)
	}
	defer func() { e.close(span, r, &d, err, now) }()
	if e.cfg.Recorder != nil {
		var rec audit.Record
		if prior.record != nil {
			rec = *prior.record
			if auditID == "" {
				auditID = "aud_" + d.ID[len("dec_"):]
			}
			reissued(&rec, &d, auditID, e.cfg.Now().Sub(now))
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
// ids (auditID the record's), time, trace and span, and the latency.
func reissued(rec *audit.Record, d *Decision, auditID string, latency time.Duration) {
	rec.ID, rec.DecisionID = auditID, d.ID
	rec.Timestamp, rec.TraceID, rec.SpanID = d.Time, d.TraceID, d.SpanID
	rec.LatencyUs = latency.Microseconds()
}

// reissueIDs does open's work for a decision reissued without a tracer
// (the wasm filter's): d's decision, trace and span ids, from the same
// random source and in the same forms as open's, and the traceparent the
// upstream gets, are made in one string, and the record's id (returned)
// with them, where open and the record made five strings: each an
// allocation, which Go's wasm runtime makes slowly (docs/performance.md).
func (e *Engine) reissueIDs(r *Request, d *Decision, now time.Time) (auditID string) {
	e.traceOfDelegation(r)
	d.Time, d.Source = now, r.Source
	var dec, tid, sid [32]byte
	decHex := appendID(dec[:0], e.random(), 12, now)
	traceHex := append(tid[:0], r.TraceID...)
	if !edge.ValidTraceID(r.TraceID) {
		traceHex = appendID(tid[:0], e.random(), 16, now)
	}
	spanHex := appendID(sid[:0], e.random(), 8, time.Time{})
	// "dec_…" "aud_…" "00-" trace "-" span "-01": the traceparent of a
	// trace MeshGuard parents (Traceparent), sampled.
	var sb strings.Builder
	sb.Grow(2*(4+len(decHex)) + 3 + len(traceHex) + 1 + len(spanHex) + 3)
	sb.WriteString("dec_")
	sb.Write(decHex)
	sb.WriteString("aud_")
	sb.Write(decHex)
	sb.WriteString("00-")
	sb.Write(traceHex)
	sb.WriteByte('-')
	sb.Write(spanHex)
	sb.WriteString("-01")
	s := sb.String()
	n := 4 + len(decHex)
	d.ID, auditID = s[:n], s[n:2*n]
	tp := s[2*n:]
	d.TraceID, d.SpanID = tp[3:3+len(traceHex)], tp[4+len(traceHex):4+len(traceHex)+len(spanHex)]
	d.ParentsUpstream = r.ParentSpanID == ""
	d.traceparent = tp
	return auditID
}
