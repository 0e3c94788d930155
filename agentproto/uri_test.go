package agentproto_test

import (
	"errors"
	"net/url"
	"path"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/internal/edge"
)

// TestResourceURISpellings: a resources/read URI a server resolves to
// another resource than its text names is refused; each refused spelling
// is checked to resolve, with Go's net/url and path.Clean (what a handler
// resolves it with), to the path in the resolved column, and the normal
// spellings are decided as sent.
func TestResourceURISpellings(t *testing.T) {
	read := func(uri string) []byte {
		return []byte(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"` + uri + `"}}`)
	}
	for _, tc := range []struct{ name, uri, resolved string }{
		{"a dot-dot segment", `file:///public/../secrets/key`, "/secrets/key"},
		{"a dot segment", `file:///public/./x`, "/public/x"},
		{"an escaped dot-dot", `file:///public/%2E%2E/secrets/key`, "/secrets/key"},
		{"an escaped letter", `file:///secr%65ts/key`, "/secrets/key"},
		{"a lower-case escape", `file:///secrets%2fkey`, "/secrets/key"},
		{"an escaped slash", `file:///secrets%2Fkey`, "/secrets/key"},
		{"an empty segment", `file:///public//secrets/key`, "/public/secrets/key"},
		{"an upper-case scheme", `FILE:///secrets/key`, "/secrets/key"},
		{"file: naming localhost", `file://localhost/secrets/key`, "/secrets/key"},
		{"file: without an authority", `file:/secrets/key`, "/secrets/key"},
		{"a fragment", `file:///secrets/key#public`, "/secrets/key"},
		{"an upper-case host", `https://API.example/key`, "/key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			if p := path.Clean(u.Path); p != tc.resolved {
				t.Fatalf("net/url resolves %q to %q, not %q: no differential", tc.uri, p, tc.resolved)
			}
			_, err = agentproto.ParseMCP("files", read(tc.uri), nil)
			if !errors.Is(err, agentproto.ErrURINotNormal) || !errors.Is(err, agentproto.ErrBadRequest) {
				t.Fatalf("ParseMCP(%s) = %v, want ErrURINotNormal", tc.uri, err)
			}
			h := edge.MapHeaders{"Mcp-Method": "resources/read", "Mcp-Name": tc.uri, "Mcp-Protocol-Version": agentproto.HeaderRevision}
			if _, err := agentproto.HeaderOnly("files", h); !errors.Is(err, agentproto.ErrURINotNormal) {
				t.Fatalf("HeaderOnly(Mcp-Name %s) = %v, want ErrURINotNormal", tc.uri, err)
			}
		})
	}
	for _, uri := range []string{`file:///public/report.txt`, `file:///public/dir/`, `mail://inbox/1`, `mail://inbox`,
		`file:///caf%C3%A9`, `file:///a%20b`, `db://users?id=1`, `urn:isbn:0451450523`, `https://api.example/v1/x`} {
		c, err := agentproto.ParseMCP("files", read(uri), nil)
		if err != nil || c.Action != "read:files/"+uri {
			t.Errorf("ParseMCP(%s) = %q, %v; want read:files/%s", uri, c.Action, err, uri)
		}
	}
}
