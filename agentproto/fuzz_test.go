package agentproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
)

// FuzzParse holds the parsers to an oracle: no panic; a refused body
// yields no action and is ErrBadRequest; an accepted body is one that
// encoding/json (a second, independent reader) accepts too, and
// re-encoding what it read gives a body that parses to the same Call — so
// what MeshGuard decides on is what a server reading the same bytes sees.
// Seeds: testdata/fuzz/FuzzParse/.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"a@example.com"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":"x","method":"message/send","params":{"message":{"taskId":"t","contextId":"c"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) (agentproto.Call, error){
			func(b []byte) (agentproto.Call, error) { return agentproto.ParseMCP("s", b, nil) },
			func(b []byte) (agentproto.Call, error) { return agentproto.ParseA2A("s", b) },
		} {
			c, err := parse(body)
			if err != nil {
				if c.Action != "" || !errors.Is(err, agentproto.ErrBadRequest) {
					t.Fatalf("refusal %v came with action %q or is not ErrBadRequest", err, c.Action)
				}
				continue
			}
			if c.Action == "" {
				t.Fatalf("accepted with no action: %+v", c)
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("accepted a body encoding/json refuses (%v): %q", err, body)
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("re-encoding: %v", err)
			}
			c2, err := parse(again)
			if err != nil {
				t.Fatalf("the re-encoded body %s is refused: %v", again, err)
			}
			// RawArguments are the bytes as sent, which re-encoding changes;
			// what they decode to must not change, and must decode: the
			// parse accepted them.
			if diff := cmp.Diff(c, c2, cmpopts.IgnoreFields(agentproto.Call{}, "RawArguments", "RawParams"), cmpopts.IgnoreUnexported(agentproto.Call{})); diff != "" {
				t.Fatalf("the re-encoded body reads differently (-first +again):\n%s", diff)
			}
			// RawParams too; an approval binds their digest, which must not
			// change (nor fail: the parse accepted them).
			if (c.RawParams == nil) != (c2.RawParams == nil) {
				t.Fatalf("params present %t, re-encoded %t", c.RawParams != nil, c2.RawParams != nil)
			}
			if c.RawParams != nil {
				p1, err1 := audit.ArgumentsDigest(c.RawParams)
				p2, err2 := audit.ArgumentsDigest(c2.RawParams)
				if err1 != nil || err2 != nil || p1 != p2 {
					t.Fatalf("params digest %s (%v), re-encoded %s (%v)", p1, err1, p2, err2)
				}
			}
			a1, err := c.Arguments()
			if err != nil {
				t.Fatalf("accepted arguments that do not decode (%v): %q", err, body)
			}
			a2, err := c2.Arguments()
			if err != nil {
				t.Fatalf("re-encoded arguments that do not decode: %v", err)
			}
			if diff := cmp.Diff(a1, a2); diff != "" {
				t.Fatalf("the re-encoded arguments read differently (-first +again):\n%s", diff)
			}
			// Argument reads what Arguments decodes, key by key and one
			// level down.
			for k, v := range a1 {
				checkArgument(t, c, k, v, named(k))
				if inner, ok := v.(map[string]any); ok {
					for k2, v2 := range inner {
						checkArgument(t, c, k+"."+k2, v2, named(k) && named(k2))
					}
				}
			}
		}
	})
}

// named: a dot path can name the key k, which holds no dot and is not
// empty (policies refuse a path with an empty segment).
func named(k string) bool { return k != "" && !strings.Contains(k, ".") }

// checkArgument: Argument(path) is want. Only paths whose keys a dot path
// can name are checked (named).
func checkArgument(t *testing.T, c agentproto.Call, path string, want any, reachable bool) {
	t.Helper()
	got, ok, err := c.Argument(path)
	if err != nil {
		t.Fatalf("Argument(%q): %v", path, err)
	}
	if reachable && (!ok || !cmp.Equal(got, want)) {
		t.Fatalf("Argument(%q) = %v, %v; Arguments has %v", path, got, ok, want)
	}
}
