package engine

import "context"

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
	d = *prior
	d.SpanID, d.TraceSampled = "", false
	ctx, span := e.open(ctx, r, &d, now)
	defer func() { e.close(span, r, &d, err, now) }()
	if e.cfg.Recorder != nil {
		if err := e.record(ctx, auditRecord(r, &d, e.cfg.Now().Sub(now))); err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}
