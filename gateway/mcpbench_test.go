package gateway_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// BenchmarkGatewayMCPCall measures what deciding on the body costs the
// gateway: Gateway.ServeHTTP on a recorder, a real engine and a real
// upstream, for the same 2 KB body POSTed
//
//   - plain: to a route without a protocol (streamed, decided on the
//     method and path), the baseline;
//   - mcp: as a tools/call to a route declaring MCP (read, parsed,
//     decided on, forwarded from the buffer).
func BenchmarkGatewayMCPCall(b *testing.B) {
	const policies = `
name: bench
appliesTo: {tags: [mail]}
rules:
  - {name: mail-tools, effect: allow, actions: ["call:mail/*", "write:api/*"]}
`
	f := enginetest.New(b, policies, enginetest.Options{Routes: mcpRoutes})
	_, tok := f.Agent(b, "mailer", trust.Verified, []string{"mail"})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":42,"result":{"content":[]}}`)
	}))
	b.Cleanup(up.Close)
	gw, err := gateway.New(gateway.Config{Checker: f.Engine, Target: mustURL(b, up.URL), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"alice@example.com","subject":"Quarterly report","options":{"cc":["bob@example.com","carol@example.com"],"priority":3},"body":"`)
	sb.WriteString(strings.Repeat("Lorem ipsum dolor sit amet. ", 64))
	sb.WriteString(`"},"_meta":{"progressToken":"p-1"}}}`)
	body := []byte(sb.String())
	for _, tc := range []struct{ name, path string }{{"plain", "/proxy/api/outbox"}, {"mcp", "/proxy/mcp"}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", tc.path, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Traceparent", traceparent)
				w := httptest.NewRecorder()
				gw.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
