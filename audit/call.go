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

// redactKey is how a member name is compared with the redacted names:
// case-folded as encoding/json matches struct fields (so as a Go MCP
// server reads "PASSWORD" into its password field: each letter stands for
// its whole simple fold orbit, "ſ" for "s", the Kelvin sign for "k"), in
// lower case, and without '_' and '-' (a JavaScript tool's apiKey is
// api_key). A name that is lower-case ASCII already is returned as is.
func redactKey(name string) string {
	plain := true
	for i := 0; i < len(name) && plain; i++ {
		c := name[i]
		plain = c < utf8.RuneSelf && c != '_' && c != '-' && (c < 'A' || c > 'Z')
	}
	if plain {
		return name
	}
	b := make([]byte, 0, len(name))
	for _, r := range name {
		if r == '_' || r == '-' {
			continue
		}
		// The smallest rune of r's orbit names the orbit, as
		// encoding/json's foldName has it; its lower case spells it.
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b = utf8.AppendRune(b, unicode.ToLower(least))
	}
	return string(b)
}

// redact replaces, at any depth, the value of every object member whose
// name is one of names (the redactKey of each).
func redact(v any, names map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if names[redactKey(k)] {
				v[k] = Redacted
				continue
			}
			redact(e, names)
		}
	case []any:
		for _, e := range v {
			redact(e, names)
		}
	}
}

// redactedCopy is v with redact applied, leaving v as it was.
func redactedCopy(v any, names map[string]bool) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if names[redactKey(k)] {
				out[k] = Redacted
			} else {
				out[k] = redactedCopy(e, names)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = redactedCopy(e, names)
		}
		return out
	}
	return v
}

// redactContext is ctx with the arguments policies read redacted
// (arguments.auth.token, when token is redacted, reads Redacted; so do the
// members of an object or list read whole, arguments.auth holding token),
// and the arguments a POST /v1/check states ({"arguments": {...}}): a rule
// that reads a secret must not put it in the trail. ctx is the decision's,
// so it is copied when anything is replaced.
func redactContext(ctx map[string]any, redacted map[string]bool) map[string]any {
	var out map[string]any
	for k, v := range ctx {
		var nv any
		switch path, ok := strings.CutPrefix(k, "arguments."); {
		case ok && slices.ContainsFunc(strings.Split(path, "."), func(n string) bool { return redacted[redactKey(n)] }):
			nv = Redacted
		case ok || k == "arguments":
			switch v.(type) {
			case map[string]any, []any:
				nv = redactedCopy(v, redacted)
			default:
				continue
			}
		default:
			continue
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

// Recorded is what a Writer with this configuration records of a call's
// arguments raw (a JSON object): their digest, and the arguments
// themselves only when Record is set, redacted, and nil past
// MaxRecordedArguments. One rule for the trail and for what a human
// approval shows (docs/governance.md).
func (ac ArgumentsConfig) Recorded(raw []byte) (digest string, args json.RawMessage, err error) {
	var c Call
	c.SetArguments(raw)
	if err := c.finish(ac.Record, ac.redactSet()); err != nil {
		return "", nil, err
	}
	return c.ArgumentsDigest, c.Arguments, nil
}
