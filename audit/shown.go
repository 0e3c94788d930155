package audit

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// What a person deciding a human approval is shown of the request it is
// bound to (docs/governance.md "What the approver is shown"), by the
// trail's redaction rule (AUDIT_REDACT): the query string and the
// decision's context. The arguments and an A2A request's params go
// through Recorded, as the trail's arguments do.

// ShownQuery is raw, a request's query string as sent, with the value of
// every parameter whose name is redacted replaced by Redacted; ok is false
// when the result is larger than MaxRecordedArguments (too large to show:
// nothing is). A name is compared as a server may read it: decoded, with
// a bracket suffix dropped (token[] is token) and '.' and ' ' ignored as
// '_' is (PHP reads api.key as api_key); a name that does not decode is
// redacted (it may spell anything). Pairs are split on ';' as well as '&',
// since some servers split there.
func (ac ArgumentsConfig) ShownQuery(raw string) (shown string, ok bool) {
	if raw == "" {
		return "", true
	}
	names := ac.redactSet()
	var b strings.Builder
	start := 0
	for i := 0; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '&' && raw[i] != ';' {
			continue
		}
		pair := raw[start:i]
		if k, _, eq := strings.Cut(pair, "="); eq && redactedParam(k, names) {
			pair = k + "=" + Redacted
		}
		b.WriteString(pair)
		if i < len(raw) {
			b.WriteByte(raw[i])
		}
		start = i + 1
	}
	if b.Len() > MaxRecordedArguments {
		return "", false
	}
	return b.String(), true
}

// redactedParam reports whether a query parameter's raw name is redacted.
func redactedParam(raw string, names map[string]bool) bool {
	name, err := url.QueryUnescape(raw)
	if err != nil {
		return true
	}
	if i := strings.IndexByte(name, '['); i > 0 {
		name = name[:i]
	}
	if strings.ContainsAny(name, ". ") {
		name = strings.Map(func(r rune) rune {
			if r == '.' || r == ' ' {
				return -1
			}
			return r
		}, name)
	}
	return names[redactKey(name)]
}

// ShownContext is a decision's context (the header.*/query.* values
// policies read, or POST /v1/check's context) as JSON, with every key
// that names a redacted member in any of its dotted parts (query.token,
// header.authorization, arguments.auth.password) read as Redacted, and
// redacted members of object and list values redacted at any depth; ok
// is false when the encoding is larger than MaxRecordedArguments. It
// redacts all the trail's redactContext does, and more: the trail keeps
// the values replay re-decides on, a person needs none of them.
func (ac ArgumentsConfig) ShownContext(ctx map[string]any) (shown json.RawMessage, ok bool, err error) {
	if len(ctx) == 0 {
		return nil, true, nil
	}
	names := ac.redactSet()
	out := make(map[string]any, len(ctx))
	for k, v := range ctx {
		redacted := false
		for part := range strings.SplitSeq(k, ".") {
			if i := strings.IndexByte(part, '['); i > 0 {
				part = part[:i]
			}
			if names[redactKey(part)] {
				redacted = true
				break
			}
		}
		if redacted {
			out[k] = Redacted
		} else {
			out[k] = redactedCopy(v, names)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, false, fmt.Errorf("encoding the context shown: %w", err)
	}
	if len(b) > MaxRecordedArguments {
		return nil, false, nil
	}
	return b, true, nil
}
