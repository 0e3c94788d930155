package filter_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/wasmfilter/filter"
)

// toolList50 is a tools/list answer (id 7) of 50 tools with a description
// and an input schema each, about 12 KB: search_papers, which
// ToolPolicies allow, and 49 they do not.
func toolList50() []byte {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":7,"result":{"tools":[`)
	for i := range 50 {
		name := fmt.Sprintf("tool_%02d", i)
		if i == 25 {
			name = "search_papers"
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":%q,"description":"Does thing number %d to the papers of the library, carefully.","inputSchema":{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","maximum":50}},"required":["query"]}}`, name, i)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// BenchmarkList is an allowed tools/list through the native filter, its
// body after its headers, and the upstream's answer of 50 tools in two
// chunks: "unfiltered" answers with a 500 (passed as sent: the request's
// cost, the baseline), "filtered" with the list, held, buffered and
// filtered. "FilterList" is agentproto's rewrite alone with the engine's
// Permits, measured in the same run.
func BenchmarkList(b *testing.B) {
	env := filtertest.New(b)
	c, d := listCase(b, env)
	list := toolList50()
	b.Run("FilterList", func(b *testing.B) {
		b.SetBytes(int64(len(list)))
		for b.Loop() {
			if _, err := agentproto.FilterList(*d.Call, list, "application/json", d.Permits); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct{ name, status string }{{"unfiltered", "500"}, {"filtered", "200"}} {
		b.Run("native/"+tc.name, func(b *testing.B) {
			e := start(b, filter.NewVM(), benchConfig(b, env, 0))
			defer e.stop()
			hdrs := c.HeaderMap()
			resp := [][2]string{{":status", tc.status}, {"content-type", "application/json"}}
			half := len(list) / 2
			b.SetBytes(int64(len(list)))
			for i := 0; b.Loop(); i++ {
				id := e.host.InitializeHttpContext()
				e.host.CallOnRequestHeaders(id, hdrs, false)
				if a := e.host.CallOnRequestBody(id, c.Body, true); a != types.ActionContinue {
					b.Fatalf("request: action %v: %+v", a, e.host.GetSentLocalResponse(id))
				}
				e.host.CallOnResponseHeaders(id, resp, false)
				e.host.CallOnResponseBody(id, list[:half], false)
				if a := e.host.CallOnResponseBody(id, list[half:], true); a != types.ActionContinue {
					b.Fatalf("answer: action %v: %+v", a, e.host.GetSentLocalResponse(id))
				}
				if i == 0 && tc.status == "200" {
					if got := e.host.GetCurrentResponseBody(id); bytes.Contains(got, []byte("tool_00")) || !bytes.Contains(got, []byte("search_papers")) {
						b.Fatalf("not filtered: %.200q", got)
					}
				}
				e.host.CompleteHttpContext(id)
			}
		})
	}
}
