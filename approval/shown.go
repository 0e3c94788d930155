package approval

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Shown is what a person deciding an approval reads of the request
// besides its agent, chain, action and resource: the rest of what the
// approval is bound to, redacted as the audit trail redacts. Every surface
// where a person decides (the CLI, the admin API's reader, the link's
// page, the notifications) shows Lines, so they all show the same.
type Shown struct {
	Query           string
	Context         json.RawMessage
	Arguments       json.RawMessage
	ArgumentsDigest string
	Params          json.RawMessage
	ParamsDigest    string
	Omitted         []string
}

// Shown is a's.
func (a *Approval) Shown() Shown {
	return Shown{Query: a.Query, Context: a.Context, Arguments: a.Arguments, ArgumentsDigest: a.ArgumentsDigest,
		Params: a.Params, ParamsDigest: a.ParamsDigest, Omitted: a.Omitted}
}

// Lines are s as label and value, in reading order, a field absent when
// the request had none: the query string, the context, the call's
// arguments and an A2A request's params (the message). A value not
// recorded (AUDIT_ARGUMENTS off) or too large to show says so, with its
// digest: the approver knows there is something they cannot read.
func (s Shown) Lines() [][2]string {
	var lines [][2]string
	tooLarge := fmt.Sprintf("not shown: larger than %d bytes", MaxArguments)
	switch {
	case s.Query != "":
		lines = append(lines, [2]string{"Query", s.Query})
	case slices.Contains(s.Omitted, "query"):
		lines = append(lines, [2]string{"Query", tooLarge})
	}
	switch {
	case len(s.Context) > 0:
		lines = append(lines, [2]string{"Context", string(s.Context)})
	case slices.Contains(s.Omitted, "context"):
		lines = append(lines, [2]string{"Context", tooLarge})
	}
	for _, f := range []struct {
		label, omitted string
		value          json.RawMessage
		digest         string
	}{
		{"Arguments", "arguments", s.Arguments, s.ArgumentsDigest},
		{"Params", "params", s.Params, s.ParamsDigest},
	} {
		switch {
		case len(f.value) > 0:
			lines = append(lines, [2]string{f.label, string(f.value)})
		case slices.Contains(s.Omitted, f.omitted):
			lines = append(lines, [2]string{f.label, tooLarge + "; digest " + f.digest})
		case f.digest != "":
			lines = append(lines, [2]string{f.label, "not recorded (AUDIT_ARGUMENTS); digest " + f.digest})
		}
	}
	return lines
}
