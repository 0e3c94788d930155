package audit

import "strconv"

// Inputs are what a policy decision read that the rest of its record does
// not hold already, so that `meshguard policy replay` can decide the
// request again with other policies (docs/audit.md "inputs",
// docs/governance.md "Replay"). Nothing here repeats another field: the
// acting agent's id, name and effective tier, the action, the resource,
// the chain's ids, the context and the call are the record's own. A
// record has Inputs exactly when the engine evaluated policy for it; a
// request refused before that (a bad token, an unmapped path) has none.
type Inputs struct {
	// Tags are the acting agent's tags (policies cover agents by tag).
	Tags []string `json:"tags,omitempty"`
	// Revoked: the acting agent was not active.
	Revoked bool `json:"revoked,omitempty"`
	// Chain are the delegating agents, in the order of Record.Chain
	// (whose last id is the actor's), as the policies saw them.
	Chain []ChainMember `json:"chain,omitempty"`
	// Scope is the delegation token's scope; nil when it had none.
	Scope []string `json:"scope,omitempty"`
	// Absent lists the request values the policies read (header.*,
	// query.*, arguments.*) that the request did not carry, so a replay
	// tells an absent value from one nobody looked up. Empty at POST
	// /v1/check, whose context is the caller's whole context.
	Absent []string `json:"absent,omitempty"`
	// AfterPolicy: the policies allowed, and a step after them (the
	// delegation token's chain cap, the hand-off rule, a rate limit)
	// denied; replay does not decide those steps again.
	AfterPolicy bool `json:"afterPolicy,omitempty"`
}

// ChainMember is a delegating agent as the policies saw it.
type ChainMember struct {
	Name    string   `json:"name,omitempty"`
	Tier    string   `json:"tier,omitempty"` // its trust tier; empty for an agent that no longer existed
	Tags    []string `json:"tags,omitempty"`
	Revoked bool     `json:"revoked,omitempty"` // not active, or gone
}

// appendInputs appends the canonical encoding of in: its fields in
// declaration order, each only when set, as encoding/json's omitempty
// writes them, so the encoding survives a round trip through storage.
func appendInputs(b []byte, in *Inputs) []byte {
	b = append(b, '{')
	n := len(b)
	sep := func() {
		if len(b) > n {
			b = append(b, ',')
		}
	}
	if len(in.Tags) > 0 {
		sep()
		b = appendStrings(append(b, `"tags":`...), in.Tags)
	}
	if in.Revoked {
		sep()
		b = append(b, `"revoked":true`...)
	}
	if len(in.Chain) > 0 {
		sep()
		b = append(b, `"chain":[`...)
		for i := range in.Chain {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendMember(b, &in.Chain[i])
		}
		b = append(b, ']')
	}
	if len(in.Scope) > 0 {
		sep()
		b = appendStrings(append(b, `"scope":`...), in.Scope)
	}
	if len(in.Absent) > 0 {
		sep()
		b = appendStrings(append(b, `"absent":`...), in.Absent)
	}
	if in.AfterPolicy {
		sep()
		b = append(b, `"afterPolicy":true`...)
	}
	return append(b, '}')
}

func appendMember(b []byte, m *ChainMember) []byte {
	b = append(b, '{')
	n := len(b)
	field := func(name, v string) {
		if v == "" {
			return
		}
		if len(b) > n {
			b = append(b, ',')
		}
		b = appendString(append(append(append(b, '"'), name...), `":`...), v)
	}
	field("name", m.Name)
	field("tier", m.Tier)
	if len(m.Tags) > 0 {
		if len(b) > n {
			b = append(b, ',')
		}
		b = appendStrings(append(b, `"tags":`...), m.Tags)
	}
	if m.Revoked {
		if len(b) > n {
			b = append(b, ',')
		}
		b = append(b, `"revoked":`...)
		b = strconv.AppendBool(b, true)
	}
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}
