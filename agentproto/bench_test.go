package agentproto_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/internal/edge"
)

// body2K is a tools/call of about 2 KB, as the budget names it.
func body2K() []byte {
	var sb strings.Builder
	sb.WriteString(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"alice@example.com","subject":"Quarterly report","options":{"cc":["bob@example.com","carol@example.com"],"priority":3},"body":"`)
	sb.WriteString(strings.Repeat("Lorem ipsum dolor sit amet. ", 64))
	sb.WriteString(`"},"_meta":{"progressToken":"p-1"}}}`)
	return []byte(sb.String())
}

// BenchmarkParseMCP: parse and action of a 2 KB tools/call, the cost an
// enforcement point adds to a Check (docs/performance.md compares it with
// engine's BenchmarkCheck).
func BenchmarkParseMCP(b *testing.B) {
	body := body2K()
	h := edge.MapHeaders{"Mcp-Method": "tools/call", "Mcp-Name": "send_email", "Mcp-Session-Id": "s-1"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := agentproto.ParseMCP("mail", body, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseManyKeys: a body of the largest size made of small keys
// is refused or read in linear time (the case-fold check must not be
// quadratic).
func BenchmarkParseManyKeys(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{`)
	for i := 0; sb.Len() < agentproto.MaxBody-64; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"k%d":1`, i)
	}
	sb.WriteString(`}}}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := agentproto.ParseMCP("mail", body, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterList filters a 50-tool list answer (each tool with a
// description and an input schema), keeping every other tool, as JSON and
// as an event stream.
func BenchmarkFilterList(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"jsonrpc":"2.0","id":7,"result":{"tools":[`)
	for i := range 50 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"name":"tool_%02d","description":"Tool number %d does something useful with its arguments.","inputSchema":{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer"}},"required":["query"]}}`, i, i)
	}
	sb.WriteString(`],"nextCursor":"page-2"}}`)
	body := []byte(sb.String())
	// MCP 2026-07-28 results say how they may be cached: FilterList
	// makes a filtered list's cacheScope private.
	scoped := []byte(strings.Replace(string(body), `"result":{`, `"result":{"ttlMs":60000,"cacheScope":"public",`, 1))
	call, err := agentproto.ParseMCP("mail", []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`), nil)
	if err != nil {
		b.Fatal(err)
	}
	keep := func(action string) bool { return action[len(action)-1]%2 == 0 }
	for _, tc := range []struct {
		name, ct string
		body     []byte
	}{
		{"json", "application/json", body},
		{"sse", "text/event-stream", append(append([]byte("event: message\nid: 1\ndata: "), body...), "\n\n"...)},
		{"json_cacheScope", "application/json", scoped},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := agentproto.FilterList(call, tc.body, tc.ct, keep); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
