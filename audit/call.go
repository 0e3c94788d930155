package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Call is the agent-protocol call a decision was taken on (docs/mcp.md,
// docs/a2a.md "Audit and traces"): what the request's body carried. It
// records what was called, never the arguments unless a setting asks
// (WriterConfig.Arguments).
type Call struct {
	Protocol string `json:"protocol"` // mcp or a2a
	// Method is the JSON-RPC method (tools/call, message/send), or the
	// HTTP method of a request that is not JSON-RPC (an MCP GET or
	// DELETE, an A2A Agent Card read).
	Method string `json:"method"`
	// Name is the MCP tool or prompt name or resource URI.
	Name string `json:"name,omitempty"`
	// JSONRPCID is the JSON-RPC id as JSON text, so its type is kept
	// (`1` and `"1"` differ); empty for a notification.
	JSONRPCID    string `json:"jsonrpcId,omitempty"`
	Notification bool   `json:"notification,omitempty"`
	// HeaderOnly: decided from the MCP 2026-07-28 headers alone; the
	// arguments were not seen.
	HeaderOnly bool   `json:"headerOnly,omitempty"`
	SessionID  string `json:"sessionId,omitempty"` // MCP's Mcp-Session-Id
	TaskID     string `json:"taskId,omitempty"`    // A2A
	ContextID  string `json:"contextId,omitempty"` // A2A
	// ArgumentsDigest is the lower-case hex SHA-256 of the arguments'
	// canonical encoding (docs/mcp.md "Arguments"), for a method that
	// carries arguments (tools/call, prompts/get); a Writer computes it
	// from what SetArguments was given.
	ArgumentsDigest string `json:"argumentsDigest,omitempty"`
	// Arguments are the arguments themselves, redacted, only when the
	// writer is set to record them (WriterConfig.Arguments); omitted, with
	// ArgumentsOmitted set, when their encoding exceeds the bound.
	Arguments        json.RawMessage `json:"arguments,omitempty"`
	ArgumentsOmitted bool            `json:"argumentsOmitted,omitempty"`

	raw     []byte // the arguments as sent, for the writer to digest
	hasArgs bool   // SetArguments was called
}

// Bounds of a Call's fields, as package agentproto bounds what it reads.
const (
	MaxCallText = 4096 // method, name, id, session, task and context ids
	// MaxRecordedArguments bounds the recorded arguments' encoding; larger
	// ones are omitted (the digest stays).
	MaxRecordedArguments = 8 << 10
)

// SetArguments hands the writer the call's arguments as sent (a JSON
// object already checked by the parser, or nil for none), so it computes
// ArgumentsDigest — and records the arguments when set to — off the
// decision's path. raw must not be modified afterwards.
func (c *Call) SetArguments(raw []byte) { c.raw, c.hasArgs = raw, true }

// DigestArguments computes ArgumentsDigest now, from what SetArguments
// was given, and lets go of the arguments: for an enforcement point that
// ships its records instead of writing them (the wasm filter, which
// does it when it ships, off the decision's path). A Writer does it
// itself.
func (c *Call) DigestArguments() error { return c.finish(false, nil) }

// HeldBytes is the size of the arguments the call holds until they are
// digested, for a queue that bounds its memory.
func (c *Call) HeldBytes() int { return len(c.raw) }

// ErrBadArguments: arguments handed to SetArguments are not a JSON object.
var ErrBadArguments = errors.New("call arguments are not a JSON object")

// decodeArguments decodes raw arguments with numbers kept as written; nil
// is the empty object.
func decodeArguments(raw []byte) (map[string]any, error) {
	args := map[string]any{}
	if raw == nil {
		return args, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&args); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadArguments, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the object", ErrBadArguments)
	}
	if args == nil { // the JSON null
		return nil, fmt.Errorf("%w: null", ErrBadArguments)
	}
	return args, nil
}

// ArgumentsDigest is docs/mcp.md's digest of arguments: the SHA-256, in
// lower-case hex, of encoding/json's Marshal of the decoded object
// (numbers as written), computed without decoding it
// (appendCanonicalJSON). Absent arguments digest as {}.
func ArgumentsDigest(raw []byte) (string, error) {
	if raw == nil {
		raw = []byte("{}")
	}
	b, err := appendCanonicalJSON(make([]byte, 0, len(raw)+len(raw)/8), raw)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// finish computes the digest and, when record is set, the recorded
// arguments with the members named in redacted redacted, from what
// SetArguments was given.
func (c *Call) finish(record bool, redacted map[string]bool) error {
	if !c.hasArgs {
		return nil
	}
	digest, err := ArgumentsDigest(c.raw)
	if err != nil {
		return err
	}
	c.ArgumentsDigest = digest
	if record {
		args, err := decodeArguments(c.raw)
		if err != nil {
			return err
		}
		redact(args, redacted)
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("encoding the recorded arguments: %w", err)
		}
		if len(b) > MaxRecordedArguments {
			c.ArgumentsOmitted = true
		} else {
			c.Arguments = b
		}
	}
	c.raw, c.hasArgs = nil, false
	return nil
}

// Redacted is what a redacted argument's value becomes.
const Redacted = "[redacted]"

// redact replaces, at any depth, the value of every object member whose
// name is in names, compared by case-fold (names holds folded names,
// foldName): a server binding arguments with Go's encoding/json reads
// "Password" as its password field, and a secret must not be recorded
// because of how it was spelt. It reports whether it replaced anything.
func redact(v any, names map[string]bool) bool {
	changed := false
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if names[foldName(k)] {
				v[k] = Redacted
				changed = true
				continue
			}
			changed = redact(e, names) || changed
		}
	case []any:
		for _, e := range v {
			changed = redact(e, names) || changed
		}
	}
	return changed
}

// foldName is a member name's case-fold: each rune replaced by the
// smallest of its simple-folding orbit, so that names equal under
// strings.EqualFold (and so under encoding/json's field matching, which
// folds the Kelvin sign to k and the long s to s) fold alike.
func foldName(k string) string {
	ascii := true
	for i := 0; i < len(k) && ascii; i++ {
		ascii = k[i] < utf8.RuneSelf
	}
	if ascii {
		return strings.ToLower(k) // no copy for a name already in lower case
	}
	var sb strings.Builder
	sb.Grow(len(k))
	for _, r := range k {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		if 'A' <= m && m <= 'Z' {
			m += 'a' - 'A' // as the ASCII path folds
		}
		sb.WriteRune(m)
	}
	return sb.String()
}

// copyJSON is a deep copy of a decoded JSON value, so that redacting it
// leaves the decision's own context alone.
func copyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = copyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyJSON(e)
		}
		return out
	}
	return v
}

// redactContext is ctx with the values policies read from redacted
// arguments (arguments.auth.token, when token is redacted) replaced by
// Redacted: a rule that reads a secret must not put it in the trail. ctx is
// the decision's, so it is copied when anything is replaced.
//
// A value that is an object or a list (a rule reading arguments.auth, with
// exists: true) is recorded with its redacted members redacted, as the
// arguments are.
func redactContext(ctx map[string]any, redacted map[string]bool) map[string]any {
	var out map[string]any
	for k, v := range ctx {
		path, ok := strings.CutPrefix(k, "arguments.")
		if !ok && k != "arguments" {
			// "arguments" is how POST /v1/check states a call's
			// arguments (docs/mcp.md): redacted as a call's are.
			continue
		}
		var nv any = Redacted
		if !ok || !slices.ContainsFunc(strings.Split(path, "."), func(n string) bool { return redacted[foldName(n)] }) {
			switch v.(type) {
			case map[string]any, []any:
				if nv = copyJSON(v); !redact(nv, redacted) {
					continue
				}
			default:
				continue
			}
		}
		if out == nil {
			out = maps.Clone(ctx)
		}
		out[k] = nv
	}
	if out == nil {
		return ctx
	}
	return out
}

// appendCall appends the call's canonical encoding: every field, in
// declaration order, the arguments only when recorded (they are compact
// JSON, kept as the bytes stored).
func appendCall(b []byte, c *Call) []byte {
	b = appendField(b, "protocol", c.Protocol, true)
	b = appendField(b, "method", c.Method, false)
	b = appendField(b, "name", c.Name, false)
	b = appendField(b, "jsonrpcId", c.JSONRPCID, false)
	b = append(b, `,"notification":`...)
	b = strconv.AppendBool(b, c.Notification)
	b = append(b, `,"headerOnly":`...)
	b = strconv.AppendBool(b, c.HeaderOnly)
	b = appendField(b, "sessionId", c.SessionID, false)
	b = appendField(b, "taskId", c.TaskID, false)
	b = appendField(b, "contextId", c.ContextID, false)
	b = appendField(b, "argumentsDigest", c.ArgumentsDigest, false)
	if c.Arguments != nil {
		b = append(b, `,"arguments":`...)
		b = append(b, c.Arguments...)
	}
	b = append(b, `,"argumentsOmitted":`...)
	return strconv.AppendBool(b, c.ArgumentsOmitted)
}
