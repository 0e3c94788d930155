package engine

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
)

// requestContext is the context the policies read. At POST /v1/check it is
// the caller's, as given (an "arguments" object in it is read under
// arguments.*, as a tool call's are: policy.ArgumentValue). Everywhere
// else it is what the request really carries, and only what some policy
// reads (the set's request keys):
// the headers (header.<name>) and query parameters (query.<name>) the
// upstream receives, and an agent-protocol call's arguments
// (arguments.<path>) from the body it receives. A value the request holds
// twice is refused: MeshGuard would decide on one while the upstream may
// read the other (errValueAmbiguous; the body's parser refuses duplicate
// keys). The result is kept in the audit record, so it is bounded like the
// caller's context (errContextTooLarge).
func requestContext(r *Request, call *agentproto.Call, keys []string) (map[string]any, error) {
	if r.cooperative() {
		return r.Context, nil
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var (
		m    map[string]any
		size int
	)
	for _, k := range keys {
		var (
			v   string
			n   int
			err error
		)
		if name, ok := strings.CutPrefix(k, policy.HeaderKeyPrefix); ok {
			if r.Headers != nil {
				v, n = r.Headers.Lookup(name)
			}
			if n > 1 || n == 1 && strings.IndexByte(v, ',') >= 0 {
				err = refused(errValueAmbiguous, "header %q, which a policy reads, holds more than one value (it was sent twice, perhaps once with '_' for '-', or holds a list); send one value", name)
			}
		} else if name, ok := strings.CutPrefix(k, policy.QueryKeyPrefix); ok {
			v, n, err = queryParam(rawQuery(r.Path), name)
		} else if path, ok := strings.CutPrefix(k, policy.ArgumentsKeyPrefix); ok && call != nil {
			a, present, err := call.Argument(path)
			if err != nil {
				return nil, refused(err, "the call's arguments: %v", err)
			}
			if !present {
				continue
			}
			if size += len(k) + argumentSize(a); size > MaxContextLen {
				return nil, refused(errContextTooLarge, "the request values policies read exceed the limit of %d bytes", MaxContextLen)
			}
			if m == nil {
				m = make(map[string]any, len(keys))
			}
			m[k] = a
			continue
		}
		switch {
		case err != nil:
			return nil, err
		case n == 0:
			continue
		case !utf8.ValidString(v):
			return nil, refused(edge.ErrTextNotUTF8, "request value %s is not valid UTF-8", k)
		}
		if size += len(k) + len(v); size > MaxContextLen {
			return nil, refused(errContextTooLarge, "the request values policies read exceed the limit of %d bytes", MaxContextLen)
		}
		if m == nil {
			m = make(map[string]any, len(keys))
		}
		m[k] = v
	}
	return m, nil
}

// argumentSize is the size of an argument's value in the record's JSON,
// for the context's bound. The parser checked it as JSON already.
func argumentSize(v any) int {
	if s, ok := v.(string); ok {
		return len(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return MaxContextLen + 1
	}
	return len(b)
}

// rawQuery is the query string of a request target, "" without one.
func rawQuery(target string) string {
	i := strings.IndexByte(target, '?')
	if i < 0 {
		return ""
	}
	q := target[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	return q
}

// queryParam finds parameter name in a raw query, as HTML forms encode it
// (pairs split on '&', '+' for a space, percent-escapes), in every
// spelling some server reads as that name (sameParam). It returns the
// decoded value, how often the name appeared, or a refusal of the query:
// a malformed escape (errMalformedEscape), or a ';', which some servers
// read as a separator and others as part of a value, or the name twice
// (errValueAmbiguous).
func queryParam(raw, name string) (value string, n int, err error) {
	if raw == "" {
		return "", 0, nil
	}
	if strings.IndexByte(raw, ';') >= 0 {
		return "", 0, refused(errValueAmbiguous, "the query holds a ';', which servers split differently; a policy reads query parameters, so separate them with '&' only")
	}
	for pair := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(pair, "=")
		dk, ok := formUnescape(k)
		if !ok {
			return "", 0, refused(errMalformedEscape, "query parameter %q has a malformed percent-encoding", k)
		}
		if !sameParam(dk, name) {
			continue
		}
		dv, ok := formUnescape(v)
		if !ok {
			return "", 0, refused(errMalformedEscape, "query parameter %q has a malformed percent-encoding", name)
		}
		value, n = dv, n+1
	}
	if n > 1 {
		return "", n, refused(errValueAmbiguous, "query parameter %q, which a policy reads, appears more than once (servers read %q and other cases of it as the same parameter); send it once", name, name+"[]")
	}
	return value, n, nil
}

// sameParam reports whether the decoded query parameter key is, to some
// server, the parameter name: ASP.NET compares names case-insensitively,
// PHP, Rails and Express read name[] and name[k] as name, and PHP reads
// '.' and ' ' in a name as '_'. Deciding on "to" while the upstream reads
// "to[]" or "TO" would decide on a value the upstream never acts on.
func sameParam(key, name string) bool {
	key, name = paramBase(key), paramBase(name)
	if len(key) != len(name) {
		return false
	}
	for i := 0; i < len(key); i++ {
		if foldParamByte(key[i]) != foldParamByte(name[i]) {
			return false
		}
	}
	return true
}

// paramBase is a parameter name without its bracket suffix ("to[]" is "to").
func paramBase(s string) string {
	if i := strings.IndexByte(s, '['); i > 0 {
		return s[:i]
	}
	return s
}

func foldParamByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == ' ' || c == '.':
		return '_'
	}
	return c
}

// formUnescape decodes application/x-www-form-urlencoded text.
func formUnescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b.WriteByte(' ')
		case '%':
			if i+2 >= len(s) || edge.Unhex(s[i+1]) < 0 || edge.Unhex(s[i+2]) < 0 {
				return "", false
			}
			b.WriteByte(byte(edge.Unhex(s[i+1])<<4 | edge.Unhex(s[i+2])))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
