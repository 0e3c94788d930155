package filterapi

import (
	"strconv"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
)

// Bounds of a shipped record's inputs: those of what the engine records
// (agents' tags and names, a delegation token's scope, the request keys).
const (
	maxInputText  = 128  // a tag, a name, a tier
	maxInputScope = 64   // scope entries, as a delegation token holds
	maxInputKey   = 1024 // a scope entry or a request key
)

// checkFilterInputs holds a shipped record's inputs to what the engine
// writes (engine's recordInputs): bounded lists of clean text, one chain
// member per delegator of the record's chain. They are stored and hashed
// with the record and read by `policy replay`, so a filter must not ship
// what the engine could not have written (a NUL, a million tags).
func checkFilterInputs(rec *audit.Record) error {
	in := rec.Inputs
	if in == nil {
		return nil
	}
	bad := func(field, reason string) error { return &fieldError{field: "inputs." + field, reason: reason} }
	switch {
	case len(in.Tags) > identity.MaxTags:
		return bad("tags", "more than "+strconv.Itoa(identity.MaxTags))
	case len(in.Chain) > 0 && len(in.Chain) != len(rec.Chain)-1:
		return bad("chain", "not one member per delegator of the record's chain")
	case len(in.Scope) > maxInputScope:
		return bad("scope", "more than "+strconv.Itoa(maxInputScope)+" entries")
	case len(in.Absent) > engine.MaxContextKeys:
		return bad("absent", "more than "+strconv.Itoa(engine.MaxContextKeys)+" keys")
	}
	texts := func(field string, vs []string, limit int) error {
		for _, v := range vs {
			if err := checkText("inputs."+field, v, limit); err != nil {
				return err
			}
		}
		return nil
	}
	if err := texts("tags", in.Tags, maxInputText); err != nil {
		return err
	}
	if err := texts("scope", in.Scope, maxInputKey); err != nil {
		return err
	}
	if err := texts("absent", in.Absent, maxInputKey); err != nil {
		return err
	}
	for i := range in.Chain {
		m := &in.Chain[i]
		if err := texts("chain", []string{m.Name, m.Tier}, maxInputText); err != nil {
			return err
		}
		if len(m.Tags) > identity.MaxTags {
			return bad("chain.tags", "more than "+strconv.Itoa(identity.MaxTags))
		}
		if err := texts("chain.tags", m.Tags, maxInputText); err != nil {
			return err
		}
	}
	for _, k := range in.Absent {
		if !policy.IsArgumentsKey(k) && !isRequestKey(k) {
			return bad("absent", strconv.Quote(k)+": not a request key (header.*, query.*, arguments.*)")
		}
	}
	return nil
}

func isRequestKey(k string) bool {
	return len(k) > len(policy.HeaderKeyPrefix) && k[:len(policy.HeaderKeyPrefix)] == policy.HeaderKeyPrefix ||
		len(k) > len(policy.QueryKeyPrefix) && k[:len(policy.QueryKeyPrefix)] == policy.QueryKeyPrefix
}
