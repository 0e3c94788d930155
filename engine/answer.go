package engine

import (
	"errors"
	"fmt"
	"strings"
)

// Answer is the set of optional parts of an answer (ANSWER_EXTRAS,
// docs/enforcement.md#what-an-answer-carries). The default answer carries
// what Envoy and the upstream need: the caller's agent id, the delegation
// token minted for the target, the traceparent, the removal of every
// MeshGuard header MeshGuard does not set, a denial's headers and body,
// and decision_id in Envoy's dynamic metadata for the access log. The
// rest costs every Check bytes to build, send and decode, so it is asked
// for by name. One rule for every enforcement point: adapters render what
// the Decision says, none chooses.
type Answer uint8

const (
	// AnswerAgentName: x-meshguard-agent-name on the upstream request.
	AnswerAgentName Answer = 1 << iota
	// AnswerTier: x-meshguard-tier on the upstream request.
	AnswerTier
	// AnswerChain: x-meshguard-chain (the delegation chain) upstream.
	AnswerChain
	// AnswerDecisionID: x-meshguard-decision-id on the upstream request.
	AnswerDecisionID
	// AnswerResponseHeaders: x-meshguard-decision, -trace-id and -policy
	// on the answer to an allowed request too (a denial, and any answer
	// in audit mode, always carries them).
	AnswerResponseHeaders
	// AnswerMetadata: every field of ext_authz's dynamic metadata, not
	// decision_id alone.
	AnswerMetadata

	// AnswerAll is every optional part: the answer of earlier versions.
	AnswerAll = AnswerAgentName | AnswerTier | AnswerChain | AnswerDecisionID | AnswerResponseHeaders | AnswerMetadata
)

// ErrAnswerItem is returned by ParseAnswer for an item it does not know.
var ErrAnswerItem = errors.New("unknown answer part")

// answerNames are ParseAnswer's items, in String's order.
var answerNames = [...]struct {
	name string
	bit  Answer
}{
	{"agent-name", AnswerAgentName}, {"tier", AnswerTier}, {"chain", AnswerChain}, {"decision-id", AnswerDecisionID},
	{"response-headers", AnswerResponseHeaders}, {"metadata", AnswerMetadata},
}

// ParseAnswer reads a comma-separated list of answer parts (agent-name,
// tier, chain, decision-id, response-headers, metadata, or all); "" and
// "none" are the default answer. Items are exact and lower-case; an
// unknown or repeated one is an error naming it.
func ParseAnswer(s string) (Answer, error) {
	var a Answer
	if s == "" || s == "none" {
		return 0, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		bit := Answer(0)
		if item == "all" {
			bit = AnswerAll
		}
		for _, n := range answerNames {
			if n.name == item {
				bit = n.bit
			}
		}
		switch {
		case bit == 0:
			return 0, fmt.Errorf("%w %q (expected %s, or all)", ErrAnswerItem, item, answerList())
		case a&bit != 0:
			return 0, fmt.Errorf("answer part %q named twice", item)
		}
		a |= bit
	}
	return a, nil
}

func answerList() string {
	names := make([]string, len(answerNames))
	for i, n := range answerNames {
		names[i] = n.name
	}
	return strings.Join(names, ", ")
}

// String is the list ParseAnswer reads back ("none" for the default).
func (a Answer) String() string {
	var names []string
	for _, n := range answerNames {
		if a&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// Answer is what this engine's answers carry beyond the default: an
// adapter that refuses a request before the engine (Refusal) renders its
// denial by the same rule.
func (e *Engine) Answer() Answer { return e.cfg.Answer }

// SetAnswer makes the decision render with a; the engine sets its
// Config.Answer on every decision it makes.
func (d *Decision) SetAnswer(a Answer) { d.answer = a }

// Metadata is what an answer tells the proxy about the decision for its
// access log (ext_authz's dynamic metadata): decision_id, and with
// AnswerMetadata agent_id, action, reason, policy, rule, effect and
// trace_id. Empty values are left out.
func (d *Decision) Metadata() []Header {
	if d.answer&AnswerMetadata == 0 {
		if d.ID == "" {
			return nil
		}
		return []Header{{"decision_id", d.ID}}
	}
	all := [...]Header{
		{"decision_id", d.ID}, {"agent_id", d.AgentID}, {"action", d.Action}, {"reason", d.Reason},
		{"policy", d.Policy}, {"rule", d.Rule}, {"effect", d.Effect}, {"trace_id", d.TraceID},
	}
	out := make([]Header, 0, len(all))
	for _, h := range all {
		if h.Value != "" {
			out = append(out, h)
		}
	}
	return out
}
