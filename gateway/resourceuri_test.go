package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// publicFilesPolicies: readers may read the files service's public files.
const publicFilesPolicies = `
name: readers
appliesTo: {tags: [reader]}
rules:
  - {name: public, effect: allow, actions: ["read:files/file:///public/*", "connect:files", "list:files/*"]}
`

// newFileServer is a real MCP server (the official Go SDK) serving a
// directory through a resource template, its handler resolving the URI
// with net/url inside an os.Root, as a file server written with the SDK
// does: public/report.txt and secrets/key.
func newFileServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"public/report.txt": "report", "secrets/key": "s3cret-key"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	srv := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	srv.AddResourceTemplate(&mcp.ResourceTemplate{Name: "files", URITemplate: "file:///{+path}"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			u, err := url.Parse(req.Params.URI)
			if err != nil {
				return nil, err
			}
			b, err := root.ReadFile(strings.TrimPrefix(u.Path, "/"))
			if err != nil {
				return nil, mcp.ResourceNotFoundError(req.Params.URI)
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: string(b)}}}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	return up.URL
}

// TestResourceURIOutsideThePublicFiles: an SDK client reads through the
// gateway, allowed read:files/file:///public/*. Spelt with a dot-dot
// segment, escaped or not, the secrets' key matched the rule and the
// server read it. Now such spellings are refused (400, recorded) and the
// key never leaves; the public file is read as before.
func TestResourceURIOutsideThePublicFiles(t *testing.T) {
	routes := []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "files"}}
	f := enginetest.New(t, publicFilesPolicies, enginetest.Options{Routes: routes})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, newFileServer(t))})

	for _, tc := range []struct {
		name, uri string
		code      int64 // 0: served
		status    int
	}{
		{"a public file", "file:///public/report.txt", 0, 200},
		{"the key, spelt as it is", "file:///secrets/key", engine.RPCForbidden, 403},
		{"the key behind a dot-dot segment", "file:///public/../secrets/key", engine.RPCInvalidRequest, 400},
		{"the key behind an escaped dot-dot", "file:///public/%2E%2E/secrets/key", engine.RPCInvalidRequest, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A session each: the SDK client ends its session on a 400
			// whose JSON-RPC error has a null id (the engine answers
			// null when the body was refused before its id was kept).
			cs := connectMCP(t, gw+"/proxy/mcp", tok)
			before := statusRecords(t, f, tc.status)
			res, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: tc.uri})
			var rpcErr *jsonrpc.Error
			switch {
			case res != nil && len(res.Contents) > 0 && strings.Contains(res.Contents[0].Text, "s3cret"):
				t.Fatalf("ReadResource(%s) read the secrets' key", tc.uri)
			case tc.code == 0 && (err != nil || len(res.Contents) != 1 || res.Contents[0].Text != "report"):
				t.Fatalf("ReadResource(%s) = %v, %v; want the report", tc.uri, res, err)
			case tc.status == 403 && (!errors.As(err, &rpcErr) || rpcErr.Code != tc.code):
				t.Fatalf("ReadResource(%s) = %v, %v; want a JSON-RPC error %d", tc.uri, res, err, tc.code)
			case tc.status == 400 && err == nil:
				t.Fatalf("ReadResource(%s) = %v; want it refused", tc.uri, res)
			}
			if got := statusRecords(t, f, tc.status) - before; got != 1 {
				t.Fatalf("%d new records of status %d, want 1", got, tc.status)
			}
		})
	}
}

// statusRecords counts the decisions of a status in the audit trail; a
// refused body is recorded without a call (it was not read as one).
func statusRecords(t *testing.T, f *enginetest.Fixture, status int) int {
	t.Helper()
	n := 0
	if err := f.Store.ScanAudit(context.Background(), func(r audit.Record) error {
		if r.Status == status {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
