package audit

import "reflect"

// A RunEncoder appends the canonical encodings (Record.Canonical) of a
// run of records one after another, copying the bytes of the members a
// record shares with the one before it instead of writing them again.
// The records a decision cache reissues (engine.Reissue, the wasm filter's)
// are copies of one kept record that differ only in their ids, time,
// trace, span and latency; writing the other twenty members again was
// most of what shipping a batch of them cost in wasm
// (docs/performance.md).
//
// Members are shared when they are equal: strings and numbers by value,
// the chain element by element, and the context, call, inputs, approval
// and shadow by identity (the same map or pointer), which is what a
// reissued copy holds. So a record must not change while its run is
// encoded: use a RunEncoder for one batch, then drop it. The zero value
// is ready to use.
type RunEncoder struct {
	prev         *Record // the record encoded before, nil at first
	middle, tail []byte  // its appendMiddle and appendTail bytes
}

// Append appends r's canonical encoding to b, as Canonical would give
// it. On an error b is returned as it was, and the encoder stays usable.
func (e *RunEncoder) Append(b []byte, r *Record) ([]byte, error) {
	if r.canon != nil {
		return append(b, r.canon...), nil
	}
	start := len(b)
	b = appendHead(b, r)
	if e.prev != nil && sameMiddle(e.prev, r) {
		b = append(b, e.middle...)
	} else {
		at := len(b)
		b = appendMiddle(b, r)
		e.middle = append(e.middle[:0], b[at:]...)
		e.prev = nil // its middle is no longer the one kept
	}
	b = appendLatency(b, r)
	if e.prev != nil && sameTail(e.prev, r) {
		b = append(b, e.tail...)
	} else {
		at := len(b)
		out, err := appendTail(b, r)
		if err != nil {
			e.prev = nil
			return b[:start], err
		}
		b = out
		e.tail = append(e.tail[:0], b[at:]...)
	}
	e.prev = r
	return b, nil
}

// sameMiddle reports whether appendMiddle writes the same bytes for a and b.
func sameMiddle(a, b *Record) bool {
	return a.AgentID == b.AgentID && a.AgentName == b.AgentName && a.TrustTier == b.TrustTier &&
		a.Action == b.Action && a.Resource == b.Resource && a.Method == b.Method &&
		a.Path == b.Path && a.Host == b.Host && a.Decision == b.Decision && a.Status == b.Status &&
		a.Reason == b.Reason && a.Policy == b.Policy && a.Rule == b.Rule &&
		sameStrings(a.Chain, b.Chain) && a.DelegationDepth == b.DelegationDepth &&
		a.Source == b.Source && a.SourceAddress == b.SourceAddress && a.PolicyRevision == b.PolicyRevision
}

// sameTail reports whether appendTail writes the same bytes for a and b,
// with a's maps and pointers unchanged since it was encoded.
func sameTail(a, b *Record) bool {
	return sameMap(a.Context, b.Context) && a.Mode == b.Mode && a.Proxy == b.Proxy &&
		a.Call == b.Call && a.Inputs == b.Inputs && a.Approval == b.Approval && a.Shadow == b.Shadow
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameMap reports whether a and b are the same map (or both nil).
func sameMap(a, b map[string]any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
