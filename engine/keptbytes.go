package engine

import "github.com/meshguard/meshguard/audit"

// Per-element costs KeptBytes adds to the bytes of the strings: a string
// or slice header in a backing array, and a map slot (key and value
// headers, with the map's spare room).
const (
	stringHeader = 16
	mapSlot      = 48
)

// KeptBytes estimates the heap d keeps alive beyond its own struct and its
// kept record's (KeepRecord): the bytes of every string it and that record
// refer to — the request's path, the action and resource derived from it,
// the request values its policies read (Context), ids, names — with their
// slice and map slots. It is for a cache bounding what it holds in bytes
// (the wasm filter's decision cache). The record's fields that are d's own
// strings are not counted twice; a string that shares another's bytes
// (the resource is often the path's) is, so it errs high, never low.
func (d *Decision) KeptBytes() int {
	n := len(d.ID) + len(d.Message) + len(d.Policy) + len(d.Rule) + len(d.AgentID) + len(d.AgentName) +
		len(d.Action) + len(d.Resource) + len(d.Revision) + len(d.TargetAgent) + len(d.TargetName) +
		len(d.Delegation) + len(d.ApprovalID) + len(d.TraceID) + len(d.SpanID) + len(d.traceparent)
	n += stringsBytes(d.Chain) + stringsBytes(d.ChainNames) + stringsBytes(d.inputs.scope)
	n += anyBytes(d.Context)
	if rec := d.record; rec != nil {
		// Those of its fields that are not d's: the request's, and the
		// strings auditRecord makes.
		n += len(rec.ID) + len(rec.Path) + len(rec.Host) + len(rec.Method) + len(rec.SourceAddress) +
			len(rec.Proxy) + len(rec.TrustTier)
		if in := rec.Inputs; in != nil {
			n += inputsBytes(in)
		}
	}
	return n
}

func inputsBytes(in *audit.Inputs) int {
	n := stringsBytes(in.Tags) + stringsBytes(in.Scope) + stringsBytes(in.Absent)
	for i := range in.Chain {
		m := &in.Chain[i]
		n += 3*stringHeader + len(m.Name) + len(m.Tier) + stringsBytes(m.Tags)
	}
	return n
}

func stringsBytes(ss []string) int {
	n := 0
	for _, s := range ss {
		n += stringHeader + len(s)
	}
	return n
}

// anyBytes is what a decoded context value holds: a request value is a
// string; a call's arguments (never cached, but counted all the same) are
// JSON values.
func anyBytes(v any) int {
	switch v := v.(type) {
	case string:
		return len(v)
	case map[string]any:
		n := 0
		for k, e := range v {
			n += mapSlot + len(k) + anyBytes(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range v {
			n += stringHeader + anyBytes(e)
		}
		return n
	default:
		return 8 // a number or a bool, boxed
	}
}
