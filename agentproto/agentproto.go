// Package agentproto reads what an agent-protocol request really carries:
// an MCP (docs/mcp.md) or A2A (docs/a2a.md) JSON-RPC 2.0 request body
// becomes a Call — the action a policy decides on (call:mail/send_email,
// send:planner, …), the tool's arguments for conditions under
// "arguments.", and what the audit trail records.
//
// Parsing is strict and bounded, and refuses whatever two readers of the
// same bytes could read differently (duplicate keys, invalid UTF-8, …):
// the decision must rest on what the upstream will read. Standard library
// only and no globals but sentinel errors, so the wasm filter embeds it.
package agentproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/meshguard/meshguard/internal/edge"
)

// Bounds.
const (
	// MaxBody is the largest request body read; a larger one is refused,
	// never decided on a prefix.
	MaxBody = 1 << 20
	// MaxDepth is the deepest nesting of objects and arrays.
	MaxDepth = 64
	// MaxName bounds a method, tool or prompt name, a resource URI, an id
	// and a session, task or context id.
	MaxName = 4096
)

// Protocol is an agent protocol a route or service declares.
type Protocol string

// The protocols.
const (
	MCP Protocol = "mcp"
	A2A Protocol = "a2a"
)

// What callers branch on. Every refusal wraps ErrBadRequest (reason
// bad_request, a 400) except ErrHeaderMismatch (mcp_header_mismatch, also a
// 400); the more specific sentinels are wrapped alongside.
var (
	ErrBadRequest   = errors.New("bad agent-protocol request")
	ErrTooLarge     = errors.New("body too large")
	ErrBatch        = errors.New("JSON-RPC batch")
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrKeyCase: a key MeshGuard reads (params.arguments, an argument a
	// policy reads) is sent only in another case (or another case-fold
	// spelling), which Go's encoding/json binds to the field while
	// case-sensitive readers do not.
	ErrKeyCase        = errors.New("key spelt in another case than the name read")
	ErrHeaderMismatch = errors.New("Mcp-Method/Mcp-Name header disagrees with the body")
	// ErrNoHeaders: HeaderOnly found no Mcp-Method header to decide on.
	ErrNoHeaders = errors.New("no Mcp-Method header")
)

// Reason is the decision reason of a refusal: "mcp_header_mismatch" for
// ErrHeaderMismatch, "bad_request" for anything else.
func Reason(err error) string {
	if errors.Is(err, ErrHeaderMismatch) {
		return "mcp_header_mismatch"
	}
	return "bad_request"
}

// Headers is a view of the request's headers; the engine's Headers and
// package edge's views satisfy it. Lookup takes a lower-case name and
// returns the value and how many times the header appeared.
type Headers interface {
	Lookup(name string) (value string, n int)
}

// Call is what one request carries, as a policy decides on it and the
// audit trail records it.
type Call struct {
	Protocol Protocol
	// Service is the service the call was sent to, as the route names it.
	Service string
	// Method is the JSON-RPC method as sent.
	Method string
	// Action is the policy action: call:S/<tool>, send:S, … (docs/mcp.md,
	// docs/a2a.md).
	Action string
	// Name is the MCP tool or prompt name or resource URI, if any.
	Name string
	// ID is the JSON-RPC id as JSON text, so its type is kept: `1` and
	// `"1"` differ. Empty for a notification.
	ID           string
	Notification bool
	// RawArguments are the MCP call's arguments (tools/call, prompts/get)
	// as sent: a JSON object already checked as strictly as the rest of
	// the body, nil if none were sent. Arguments decodes them.
	RawArguments []byte
	// HasArguments: the method carries arguments (tools/call,
	// prompts/get), so the audit record takes their digest
	// (audit.ArgumentsDigest).
	HasArguments bool
	// RawParams are an A2A request's params as sent (the message, its
	// task, its configuration): a JSON object already checked as strictly
	// as the rest of the body, nil if none were sent. A human approval of
	// the request is bound to their digest, as a tool call's is to its
	// arguments'.
	RawParams []byte
	// TaskID and ContextID are A2A's, where the request names them.
	TaskID, ContextID string
	// SessionID is MCP's Mcp-Session-Id header.
	SessionID string
	// args indexes RawArguments' top-level members, as the parse met
	// them, so that Argument reads one without scanning again.
	args argIndex
	// HeaderOnly: decided from the 2026-07-28 headers alone (HeaderOnly),
	// so Arguments are unknown, not empty; a rule that reads arguments
	// must not match such a call.
	HeaderOnly bool
}

// Lists reports whether the call asks for a list whose answer the
// enforcement points that see responses filter (tools/list, prompts/list,
// resources/list).
func (c Call) Lists() bool {
	return c.Protocol == MCP && (c.Method == "tools/list" || c.Method == "prompts/list" || c.Method == "resources/list")
}

// ListedAction is the action of one item of a list the call asks for:
// call:S/<name> for a tool of tools/list, get:S/prompts/<name> for a
// prompt, read:S/<uri> for a resource; "" when the call lists nothing.
func (c Call) ListedAction(name string) string {
	var m string
	switch {
	case !c.Lists():
		return ""
	case c.Method == "tools/list":
		m = "tools/call"
	case c.Method == "prompts/list":
		m = "prompts/get"
	default:
		m = "resources/read"
	}
	return mcpAction(c.Service, m, name)
}

// Arguments decodes the call's arguments, for conditions under
// "arguments."; nil if none were sent. Numbers are json.Number. The parse
// only validates them: most rules read no arguments, so the decoding is
// paid by the decisions that do.
func (c Call) Arguments() (map[string]any, error) {
	if c.RawArguments == nil {
		return nil, nil
	}
	v, err := decodeStrict(c.RawArguments)
	if err != nil {
		return nil, fmt.Errorf("decoding the arguments: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: params.arguments must be an object", ErrBadRequest)
	}
	return m, nil
}

// Argument is the argument at a dot path (to, options.cc), decoded as
// Arguments decodes it, and whether the arguments hold it. It reads only
// the objects on the path and decodes only the value found, so a rule
// reading arguments.to does not pay for decoding a long body argument.
func (c Call) Argument(path string) (any, bool, error) {
	val := c.RawArguments
	if val == nil {
		return nil, false, nil
	}
	var buf [maxArgIndex]member
	ms, _ := c.args.members(val, buf[:0])
	for path != "" {
		name := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			name, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		if ms == nil {
			var s scanner
			s.reset(val)
			var kind byte
			var err error
			if ms, kind, err = s.topMembers(); err != nil {
				return nil, false, fmt.Errorf("reading the arguments: %w", err)
			}
			if kind == '[' {
				// A list on the path (recipients.email over
				// recipients: [{email: …}, …]): the values of each
				// element, as the tool reads them all.
				rest := name
				if path != "" {
					rest += "." + path
				}
				return listArgument(val, rest)
			}
			if kind != '{' {
				return nil, false, nil
			}
		}
		var ok bool
		if val, ok = lookup(ms, name); !ok {
			if k, found := lookupFold(ms, name); found {
				// Absent to the policy, but the argument itself to a
				// server binding with encoding/json: a deny rule on it
				// would not match while the tool reads it. Refused.
				return nil, false, fmt.Errorf("%w: %w: the argument %q is sent as %q", ErrBadRequest, ErrKeyCase, name, k)
			}
			return nil, false, nil
		}
		ms = nil
	}
	v, err := decodeStrict(val)
	if err != nil {
		return nil, false, fmt.Errorf("decoding an argument: %w", err)
	}
	return v, true, nil
}

// listArgument is Argument's value at path within each element of the
// JSON list raw, flattened into one list (a policy reads a list element
// by element): elements without the path add nothing, and none found is
// an absent argument. A key spelt in another case is refused, as Argument
// refuses it.
func listArgument(raw []byte, path string) (any, bool, error) {
	v, err := decodeStrict(raw)
	if err != nil {
		return nil, false, fmt.Errorf("decoding an argument: %w", err)
	}
	var out []any
	var walk func(v any, path string) error
	walk = func(v any, path string) error {
		if path == "" {
			out = append(out, v)
			return nil
		}
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				if err := walk(e, path); err != nil {
					return err
				}
			}
		case map[string]any:
			name, rest, _ := strings.Cut(path, ".")
			e, ok := v[name]
			if !ok {
				for k := range v {
					if strings.EqualFold(k, name) {
						return fmt.Errorf("%w: %w: the argument %q is sent as %q", ErrBadRequest, ErrKeyCase, name, k)
					}
				}
				return nil
			}
			if l, isList := e.([]any); isList && rest == "" {
				out = append(out, l...)
				return nil
			}
			return walk(e, rest)
		}
		return nil
	}
	if err := walk(v, path); err != nil {
		return nil, false, err
	}
	if out == nil {
		return nil, false, nil
	}
	return out, true, nil
}

// request is one JSON-RPC 2.0 request object, checked.
type request struct {
	method       string
	id           string
	notification bool
	// hasParams and hasMessage tell an absent params or params.message
	// from an empty one; their members are the scanner's (s.params,
	// s.message), read from it directly: a pointer into the scanner held
	// here would move it to the heap.
	hasParams, hasMessage bool
	rawParams             []byte // params as sent, when an object
	// args indexes params.arguments, when it is an object.
	args argIndex
}

// parseRequest reads exactly one JSON-RPC 2.0 request object with s,
// validating every byte of it strictly but keeping only what a Call
// needs. The caller declares s, so that it stays on the caller's stack.
func parseRequest(s *scanner, body []byte) (request, error) {
	var r request
	if len(body) > MaxBody {
		return r, fmt.Errorf("%w: %w: %d bytes, over the bound of %d", ErrBadRequest, ErrTooLarge, len(body), MaxBody)
	}
	if len(body) == 0 {
		return r, fmt.Errorf("%w: empty body", ErrBadRequest)
	}
	s.reset(body)
	top, kind, err := s.topMembers()
	if err != nil {
		return r, err
	}
	switch kind {
	case '{':
	case '[':
		return r, fmt.Errorf("%w: %w: a batch (array) of requests is refused; send one request per POST", ErrBadRequest, ErrBatch)
	default:
		return r, fmt.Errorf("%w: the body is not a JSON-RPC request object", ErrBadRequest)
	}
	var jsonrpc, method, id, params []byte
	for _, m := range top {
		switch {
		case m.is("jsonrpc"):
			jsonrpc = m.val
		case m.is("method"):
			method = m.val
		case m.is("id"):
			id = m.val
		case m.is("params"):
			params = m.val
		case m.is("result"), m.is("error"):
			return r, fmt.Errorf("%w: a JSON-RPC response (%q), not a request", ErrBadRequest, m.name())
		default:
			return r, fmt.Errorf("%w: unknown JSON-RPC member %q", ErrBadRequest, m.name())
		}
	}
	if v, ok := stringValue(jsonrpc); !ok || v != "2.0" {
		return r, fmt.Errorf(`%w: "jsonrpc" must be "2.0"`, ErrBadRequest)
	}
	m, ok := stringValue(method)
	if !ok {
		return r, fmt.Errorf(`%w: "method" missing or not a string`, ErrBadRequest)
	}
	if err := checkToken("method", m); err != nil {
		return r, err
	}
	r.method = m
	switch {
	case id == nil:
		r.notification = true
	case id[0] == '"':
		v, _ := stringValue(id)
		if err := edge.CheckText(v, MaxName); err != nil {
			return r, fmt.Errorf("%w: the id: %w", ErrBadRequest, err)
		}
		b, _ := json.Marshal(v) // a valid string: cannot fail
		r.id = string(b)
	case id[0] == '-' || id[0] >= '0' && id[0] <= '9':
		if len(id) > 64 {
			return r, fmt.Errorf("%w: the id: a number of %d digits", ErrBadRequest, len(id))
		}
		r.id = string(id)
	default:
		return r, fmt.Errorf(`%w: "id" must be a string or a number`, ErrBadRequest)
	}
	if params != nil {
		if params[0] != '{' {
			return r, fmt.Errorf(`%w: "params" must be an object`, ErrBadRequest)
		}
		ps := s.params.all()
		if err := checkSpelling(ps, "params.", "name", "uri", "arguments", "message", "id", "taskId"); err != nil {
			return r, err
		}
		r.hasParams, r.rawParams = true, params
		if msg, ok := lookup(ps, "message"); ok && msg[0] == '{' {
			r.hasMessage = true
		}
		if a, ok := lookup(ps, "arguments"); ok && a[0] == '{' {
			r.args = s.args
		}
	}
	return r, nil
}

// checkToken is the rule for a name that becomes part of an action: the
// text rule (edge.CheckText), not empty, and no space, since an action is
// a token.
func checkToken(what, v string) error {
	if v == "" {
		return fmt.Errorf("%w: the %s is empty", ErrBadRequest, what)
	}
	if err := edge.CheckText(v, MaxName); err != nil {
		return fmt.Errorf("%w: the %s is %w", ErrBadRequest, what, err)
	}
	if edge.HasSpaceOrControl(v) {
		return fmt.Errorf("%w: the %s %q contains a space", ErrBadRequest, what, v)
	}
	return nil
}

// stringParam reads the member key of ms: absent is "", present must be a
// string.
func stringParam(ms []member, key string) (string, bool, error) {
	v, present := lookup(ms, key)
	if !present {
		return "", false, nil
	}
	str, ok := stringValue(v)
	if !ok {
		return "", true, fmt.Errorf("%w: params.%s must be a string", ErrBadRequest, key)
	}
	return str, true, nil
}

// checkSpelling refuses a member of ms whose key is one of the keys read
// (exact) spelt in another case or case-fold ("Arguments",
// "argument\u017f"): Go's encoding/json, which many servers decode with,
// binds such a key to the field, so the upstream would read what the
// decision did not.
func checkSpelling(ms []member, prefix string, exact ...string) error {
	wantASCII := true
	for _, want := range exact {
		wantASCII = wantASCII && isASCII(want)
	}
	for _, m := range ms {
		// An ASCII key folds only to ASCII keys of its own length (the
		// Kelvin sign and the long s are not ASCII): most pairs differ in
		// length, and need no more.
		ascii := wantASCII && m.raw != nil && isASCIIBytes(m.raw)
		for _, want := range exact {
			if ascii && len(m.raw) != len(want) {
				continue
			}
			if !m.is(want) && m.equalFold(want) {
				return fmt.Errorf("%w: %w: %s%s is sent as %q", ErrBadRequest, ErrKeyCase, prefix, want, m.name())
			}
		}
	}
	return nil
}

// equalFold reports whether the member's key equals k under
// strings.EqualFold, the rule of encoding/json's field matching, without
// copying an ASCII key.
func (m member) equalFold(k string) bool {
	if m.raw == nil {
		return strings.EqualFold(m.key, k)
	}
	if len(m.raw) != len(k) || !isASCII(k) {
		// A non-ASCII key may still fold to an ASCII one (the Kelvin
		// sign, the long s), at another length: the rare, slow path.
		if isASCII(k) && isASCIIBytes(m.raw) {
			return false
		}
		return strings.EqualFold(string(m.raw), k)
	}
	for i, c := range m.raw {
		d := k[i]
		if c >= utf8.RuneSelf {
			return strings.EqualFold(string(m.raw), k)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lookupFold finds the key of ms equal to key under strings.EqualFold, the
// rule of encoding/json's field matching (at most one: keys one fold apart
// were refused by the parse).
func lookupFold(ms []member, key string) (string, bool) {
	for _, m := range ms {
		if m.equalFold(key) {
			return m.name(), true
		}
	}
	return "", false
}
