package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

// labPolicy: researchers may search papers and mail our domain; nothing
// is deleted by agents.
const labPolicy = `
name: lab
rules:
  - {name: no-delete, effect: deny, actions: ["call:*/delete_*"], reason: nothing is deleted by agents}
  - name: outside-mail
    effect: deny
    actions: ["call:lab/send_email"]
    conditions: {context: {arguments.to: {not_matches: "*@ours.example"}}}
    reason: mail only to our domain
  - {name: lab-tools, effect: allow, actions: ["call:lab/*", "list:lab/*", "connect:lab"]}
`

// labExt is the route's context_extensions as MeshGuard's xDS pushes them
// for a catalogue service lab with protocol: mcp.
var labExt = map[string]string{ContextExtensionProtocol: "mcp", ContextExtensionService: "lab"}

type (
	searchArgs struct {
		Query string `json:"query"`
	}
	mailArgs struct {
		To   string `json:"to"`
		Body string `json:"body,omitempty"`
	}
	deleteArgs struct {
		ID string `json:"id"`
	}
)

// labServer is a real MCP server (the official Go SDK's) with three tools,
// served over Streamable HTTP; ran lists the tools it ran, in order.
type labServer struct {
	*httptest.Server
	mu  sync.Mutex
	ran []string
}

func startLab(t *testing.T) *labServer {
	t.Helper()
	lab := &labServer{}
	s := mcp.NewServer(&mcp.Implementation{Name: "lab", Version: "1.0.0"}, nil)
	text := func(name, s string) (*mcp.CallToolResult, any, error) {
		lab.mu.Lock()
		lab.ran = append(lab.ran, name)
		lab.mu.Unlock()
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}, nil, nil
	}
	mcp.AddTool(s, &mcp.Tool{Name: "search_papers", Description: "search the papers"}, func(_ context.Context, _ *mcp.CallToolRequest, a searchArgs) (*mcp.CallToolResult, any, error) {
		return text("search_papers", "3 papers on "+a.Query)
	})
	mcp.AddTool(s, &mcp.Tool{Name: "send_email", Description: "send an email"}, func(_ context.Context, _ *mcp.CallToolRequest, a mailArgs) (*mcp.CallToolResult, any, error) {
		return text("send_email", "sent to "+a.To)
	})
	mcp.AddTool(s, &mcp.Tool{Name: "delete_paper", Description: "delete a paper"}, func(_ context.Context, _ *mcp.CallToolRequest, a deleteArgs) (*mcp.CallToolResult, any, error) {
		return text("delete_paper", "deleted "+a.ID)
	})
	lab.Server = httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(lab.Close)
	return lab
}

func (l *labServer) tools() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ran)
}

// envoyStandIn is the part of Envoy that matters here, as an
// http.RoundTripper: for each request it builds the CheckRequest Envoy's
// ext_authz filter sends for a route configured by MeshGuard's xDS (the
// headers lower-cased with the pseudo-headers, the whole body as raw_body
// with x-envoy-auth-partial-body, the route's context_extensions, the
// source address), asks MeshGuard's real gRPC server, and forwards the
// request to the upstream with the OkHttpResponse's header edits, or
// answers with the DeniedHttpResponse.
type envoyStandIn struct {
	authz    authv3.AuthorizationClient
	upstream string // base URL
	ext      map[string]string

	mu     sync.Mutex
	denied string // the body of the last denial
}

func (e *envoyStandIn) lastDenied() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.denied
}

func (e *envoyStandIn) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	h := map[string]string{":method": req.Method, ":path": req.URL.RequestURI(), ":authority": req.Host, ":scheme": "http"}
	if h[":authority"] == "" {
		h[":authority"] = req.URL.Host
	}
	for k, vs := range req.Header {
		h[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if req.ContentLength >= 0 && req.Method != "GET" && req.Method != "DELETE" {
		h["content-length"] = strconv.FormatInt(req.ContentLength, 10)
	}
	hr := &authv3.AttributeContext_HttpRequest{Method: req.Method, Path: h[":path"], Host: h[":authority"], Scheme: "http", Protocol: "HTTP/1.1", Headers: h}
	if len(body) > 0 {
		hr.RawBody = body
		h[HeaderPartialBody] = "false"
	}
	cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: sockAddr("10.0.0.7", 49152)},
		Destination:       &authv3.AttributeContext_Peer{Address: sockAddr("10.0.0.9", 8080)},
		Request:           &authv3.AttributeContext_Request{Http: hr},
		ContextExtensions: e.ext,
	}}
	resp, err := e.authz.Check(req.Context(), cr)
	if err != nil {
		return nil, err // Envoy (failure_mode_allow: false) would answer 403
	}
	if d := resp.GetDeniedResponse(); d != nil {
		e.mu.Lock()
		e.denied = d.GetBody()
		e.mu.Unlock()
		out := &http.Response{StatusCode: int(d.GetStatus().GetCode()), Header: http.Header{}, Body: io.NopCloser(strings.NewReader(d.GetBody())),
			ContentLength: int64(len(d.GetBody())), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: req}
		out.Status = strconv.Itoa(out.StatusCode) + " " + http.StatusText(out.StatusCode)
		for _, hv := range d.GetHeaders() {
			out.Header.Set(hv.GetHeader().GetKey(), hv.GetHeader().GetValue())
		}
		return out, nil
	}
	ok := resp.GetOkResponse()
	up, err := http.NewRequestWithContext(req.Context(), req.Method, e.upstream+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	up.Header = req.Header.Clone()
	for _, k := range ok.GetHeadersToRemove() {
		up.Header.Del(k)
	}
	for _, hv := range ok.GetHeaders() {
		up.Header.Set(hv.GetHeader().GetKey(), hv.GetHeader().GetValue())
	}
	return http.DefaultTransport.RoundTrip(up)
}

// bearer is the agent's own HTTP client: it sends its token.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(req)
}

// lastRecord is the audit trail's newest record.
func lastRecord(t *testing.T, f *enginetest.Fixture) audit.Record {
	t.Helper()
	var last audit.Record
	if err := f.Store.ScanAudit(context.Background(), func(r audit.Record) error { last = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return last
}

// TestMCPSDKThroughExtAuthz: the official MCP Go SDK's client talks to the
// SDK's server through an Envoy whose ext_authz is MeshGuard's real gRPC
// server. Tool calls are decided on the body: an allowed tool runs, a
// denied one and a refused argument never reach the server, and the SDK
// client reads each denial as a JSON-RPC error and keeps its session. The
// tool list is not filtered: ext_authz never sees a response.
func TestMCPSDKThroughExtAuthz(t *testing.T) {
	f := enginetest.New(t, labPolicy, enginetest.Options{Now: fixedClock(), Answer: engine.AnswerAll})
	_, tok := f.Agent(t, "researcher", trust.Verified, []string{"researcher"})
	lab := startLab(t)
	envoy := &envoyStandIn{authz: startGRPC(t, f.Engine, testLog(t, nil)), upstream: lab.URL, ext: labExt}
	defer http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	ctx := t.Context()
	client := mcp.NewClient(&mcp.Implementation{Name: "research-agent", Version: "1.4.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             "http://lab.mesh/mcp",
		HTTPClient:           &http.Client{Transport: bearer{tok, envoy}},
		DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		t.Fatalf("connect (initialize is connect:lab): %v", err)
	}
	t.Cleanup(func() { _ = session.Close() })

	calls := []struct {
		name   string
		tool   string
		args   any
		denied bool
		reason string
	}{
		{"an allowed tool", "search_papers", searchArgs{Query: "agents"}, false, ""},
		{"a denied tool", "delete_paper", deleteArgs{ID: "p-1"}, true, "rule_deny"},
		{"an argument refused", "send_email", mailArgs{To: "eve@evil.example", Body: "the draft"}, true, "rule_deny"},
		{"an argument allowed", "send_email", mailArgs{To: "ann@ours.example", Body: "the draft"}, false, ""},
		{"the session still works after the denials", "search_papers", searchArgs{Query: "meshes"}, false, ""},
	}
	var want []string // the tools the server ran
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
			rec := lastRecord(t, f)
			if rec.Action != "call:lab/"+c.tool {
				t.Errorf("recorded action %q, want call:lab/%s", rec.Action, c.tool)
			}
			if !c.denied {
				want = append(want, c.tool)
				if err != nil || res.IsError {
					t.Fatalf("CallTool(%s): %v %+v", c.tool, err, res)
				}
				if rec.Status != 200 {
					t.Errorf("recorded %d %s, want 200", rec.Status, rec.Reason)
				}
				return
			}
			// What went back to the client is a JSON-RPC error response
			// to its request, the deny body its data.
			var rpc struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Error   jsonrpc.Error   `json:"error"`
			}
			var data body
			if raw := envoy.lastDenied(); json.Unmarshal([]byte(raw), &rpc) != nil || rpc.JSONRPC != "2.0" || len(rpc.ID) == 0 || string(rpc.ID) == "null" ||
				rpc.Error.Code != engine.RPCForbidden || json.Unmarshal(rpc.Error.Data, &data) != nil || data.Reason != c.reason || data.DecisionID != rec.DecisionID {
				t.Errorf("denied body %s: want a JSON-RPC error to the call's id, code %d, reason %s, decision %s", raw, engine.RPCForbidden, c.reason, rec.DecisionID)
			}
			// The SDK read that body: its error carries the JSON-RPC
			// error's message, which no status line holds. (go-sdk v1.8.0
			// keeps the session but wraps the jsonrpc.Error with %v, so
			// errors.As does not reach it.)
			if err == nil || rpc.Error.Message == "" || !strings.Contains(err.Error(), rpc.Error.Message) {
				t.Fatalf("CallTool(%s) = %+v, %v: want an error carrying the JSON-RPC message %q", c.tool, res, err, rpc.Error.Message)
			}
			if rec.Status != 403 || rec.Reason != c.reason {
				t.Errorf("recorded %d %s, want 403 %s", rec.Status, rec.Reason, c.reason)
			}
		})
	}
	// Each CallTool returned after its request was forwarded or not: the
	// server has run exactly the allowed calls.
	if got := lab.tools(); !slices.Equal(got, want) {
		t.Errorf("the server ran %v, want %v", got, want)
	}

	t.Run("tools/list is decided but not filtered", func(t *testing.T) {
		res, err := session.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range res.Tools {
			names = append(names, tl.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"delete_paper", "search_papers", "send_email"}) {
			t.Errorf("tools %v: ext_authz sees no response, so the list is the server's", names)
		}
		if rec := lastRecord(t, f); rec.Action != "list:lab/tools" || rec.Status != 200 {
			t.Errorf("recorded %s %d, want list:lab/tools 200", rec.Action, rec.Status)
		}
	})
}

// TestMCPBodiesEnvoySends: CheckRequests for an MCP route with bodies no
// decision may rest on are refused with a recorded 400, whatever the
// tool; the header-only path of MCP 2026-07-28 decides without a body; a
// route declaring no protocol ignores the body.
func TestMCPBodiesEnvoySends(t *testing.T) {
	f := enginetest.New(t, labPolicy, enginetest.Options{Now: fixedClock(), Answer: engine.AnswerAll})
	_, tok := f.Agent(t, "researcher", trust.Verified, []string{"researcher"})
	authz := startGRPC(t, f.Engine, testLog(t, nil))
	search := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_papers","arguments":{"query":"x"}}}`

	tests := []struct {
		name    string
		body    string            // raw_body
		str     string            // body (pack_as_bytes false)
		headers map[string]string // more headers; content-length and the partial mark are set from the body unless given
		ext     map[string]string
		status  int
		reason  string
		action  string // recorded ("" for none)
	}{
		{"a whole body as bytes", search, "", nil, labExt, 200, "", "call:lab/search_papers"},
		{"a whole body as a string", "", search, nil, labExt, 200, "", "call:lab/search_papers"},
		{"a batch", "[" + search + "]", "", nil, labExt, 400, engine.ReasonBadRequest, ""},
		{"a duplicate key", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_papers","name":"delete_paper"}}`, "", nil, labExt, 400, engine.ReasonBadRequest, ""},
		{"a prefix Envoy marks partial (that parses: the body went on with whitespace)", search, "", map[string]string{HeaderPartialBody: "true"}, labExt, 400, engine.ReasonBadRequest, ""},
		{"a partial mark that is neither true nor false", search, "", map[string]string{HeaderPartialBody: "maybe"}, labExt, 400, engine.ReasonBadRequest, ""},
		{"a body shorter than its Content-Length", search, "", map[string]string{"content-length": strconv.Itoa(len(search) + 10)}, labExt, 400, engine.ReasonBadRequest, ""},
		{"a Content-Length that is no number", search, "", map[string]string{"content-length": "12x"}, labExt, 400, engine.ReasonBadRequest, ""},
		{"a body over the bound", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_papers","arguments":{"query":"` + strings.Repeat("a", 1<<20) + `"}}}`, "", nil, labExt, 400, engine.ReasonBadRequest, ""},
		{"the body twice", search, search, nil, labExt, 400, engine.ReasonBadRequest, ""},
		{"a header that disagrees with the body", search, "", map[string]string{"mcp-method": "tools/call", "mcp-name": "send_email"}, labExt, 400, engine.ReasonMCPHeaderMismatch, ""},
		{"header-only: a tool no argument rule reads", "", "", map[string]string{"mcp-method": "tools/call", "mcp-name": "search_papers", "mcp-protocol-version": "2026-07-28", "content-length": "120"}, labExt, 200, "", "call:lab/search_papers"},
		{"header-only: a tool an argument rule reads", "", "", map[string]string{"mcp-method": "tools/call", "mcp-name": "send_email", "mcp-protocol-version": "2026-07-28"}, labExt, 403, "rule_deny", "call:lab/send_email"},
		{"header-only without the 2026-07-28 revision", "", "", map[string]string{"mcp-method": "tools/call", "mcp-name": "search_papers"}, labExt, 400, engine.ReasonBadRequest, ""},
		{"a route declaring no protocol ignores a partial body", search[:40], "", map[string]string{HeaderPartialBody: "true"}, nil, 403, "no_matching_rule", "write:mcp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := envoyCheck(call{method: "POST", host: "lab.mesh", path: "/mcp", token: tok, ext: tc.ext, headers: tc.headers})
			hr := req.Attributes.Request.Http
			hr.RawBody, hr.Body = []byte(tc.body), tc.str
			if n := len(tc.body) + len(tc.str); n > 0 {
				if _, ok := hr.Headers[HeaderPartialBody]; !ok {
					hr.Headers[HeaderPartialBody] = "false"
				}
				if _, ok := hr.Headers["content-length"]; !ok {
					hr.Headers["content-length"] = strconv.Itoa(max(len(tc.body), len(tc.str)))
				}
			}
			resp := check(t, authz, req)
			md := resp.GetDynamicMetadata().GetFields()
			status := 200
			if d := resp.GetDeniedResponse(); d != nil {
				status = int(d.GetStatus().GetCode())
			}
			if status != tc.status || md["reason"].GetStringValue() != tc.reason && tc.reason != "" {
				t.Fatalf("got %d %s (%s), want %d %s", status, md["reason"].GetStringValue(), resp.GetDeniedResponse().GetBody(), tc.status, tc.reason)
			}
			rec := lastRecord(t, f)
			if rec.DecisionID != md["decision_id"].GetStringValue() || rec.Status != tc.status || tc.action != "" && rec.Action != tc.action {
				t.Fatalf("recorded %s %d %q, want decision %s %d %q", rec.DecisionID, rec.Status, rec.Action, md["decision_id"].GetStringValue(), tc.status, tc.action)
			}
		})
	}
}
