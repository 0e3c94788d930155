package extauthz

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/trust"
)

// mailPolicy: mail may be sent to our domain only.
const mailPolicy = `
name: mail
rules:
  - name: outside-mail
    effect: deny
    actions: ["call:mail/send_email"]
    conditions: {context: {arguments.to: {not_matches: "*@ours.example"}}}
  - {name: mail-tools, effect: allow, actions: ["call:mail/*", "connect:mail"]}
`

// goldenToken stands in the golden CheckRequest for the agent's bearer
// token, which each test run issues anew.
const goldenToken = "TOKEN_SET_BY_THE_TEST"

// xdsRoute is the ext_authz per-route configuration MeshGuard's xDS
// generates for a route, read from the xds package's golden files (the
// JSON of the RouteConfiguration it pushes).
func xdsRoute(t *testing.T, routeName string) (ext map[string]string, maxBytes int, packAsBytes, partial bool) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "xds", "testdata", "golden", "route_meshguard_routes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rc struct {
		VirtualHosts []struct {
			Routes []struct {
				Name   string `json:"name"`
				Config map[string]struct {
					CheckSettings struct {
						ContextExtensions map[string]string `json:"contextExtensions"`
						WithRequestBody   struct {
							MaxRequestBytes     int  `json:"maxRequestBytes"`
							PackAsBytes         bool `json:"packAsBytes"`
							AllowPartialMessage bool `json:"allowPartialMessage"`
						} `json:"withRequestBody"`
					} `json:"checkSettings"`
				} `json:"typedPerFilterConfig"`
			} `json:"routes"`
		} `json:"virtualHosts"`
	}
	if err := json.Unmarshal(raw, &rc); err != nil {
		t.Fatal(err)
	}
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			if r.Name == routeName {
				cs := r.Config["envoy.filters.http.ext_authz"].CheckSettings
				return cs.ContextExtensions, cs.WithRequestBody.MaxRequestBytes, cs.WithRequestBody.PackAsBytes, cs.WithRequestBody.AllowPartialMessage
			}
		}
	}
	t.Fatalf("no route %q in the xds golden file", routeName)
	return nil, 0, false, false
}

// TestGoldenMCPCheckRequest: the CheckRequest Envoy sends for an MCP
// tools/call on a route MeshGuard's xDS configured (testdata, protojson
// as Envoy logs it) is a valid CheckRequest, carries what that route's
// configuration asks for (the xds golden route: its context_extensions,
// the whole body as bytes), and is decided on its body by the real gRPC
// server: the same request with another recipient is denied.
func TestGoldenMCPCheckRequest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "checkrequest_mcp_tools_call.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := enginetest.New(t, mailPolicy, enginetest.Options{Now: fixedClock(), Answer: engine.AnswerMetadata})
	_, tok := f.Agent(t, "emailer", trust.Verified, []string{"emailer"})
	var req authv3.CheckRequest
	// Strict: an unknown field name fails, so the file is Envoy's message.
	if err := (protojson.UnmarshalOptions{}).Unmarshal(bytes.Replace(raw, []byte(goldenToken), []byte(tok), 1), &req); err != nil {
		t.Fatalf("the golden CheckRequest is not one: %v", err)
	}

	ext, maxBytes, packAsBytes, partial := xdsRoute(t, "mail:default")
	hr := req.GetAttributes().GetRequest().GetHttp()
	switch {
	case !maps.Equal(req.GetAttributes().GetContextExtensions(), ext):
		t.Fatalf("context_extensions %v, the xDS route pushes %v", req.GetAttributes().GetContextExtensions(), ext)
	case maxBytes != agentproto.MaxBody || !packAsBytes || partial:
		t.Fatalf("the xDS route's with_request_body: max %d, pack_as_bytes %v, allow_partial_message %v", maxBytes, packAsBytes, partial)
	case len(hr.GetRawBody()) == 0 || hr.GetBody() != "":
		t.Fatal("pack_as_bytes: the body is raw_body, and body is empty")
	case hr.GetHeaders()[HeaderPartialBody] != "false" || hr.GetHeaders()["content-length"] != strconv.Itoa(len(hr.GetRawBody())):
		t.Fatalf("the body is whole: %s false and content-length %d", HeaderPartialBody, len(hr.GetRawBody()))
	}

	authz := startGRPC(t, f.Engine, testLog(t, nil))
	resp := check(t, authz, &req)
	if md := resp.GetDynamicMetadata().GetFields(); resp.GetOkResponse() == nil || md["action"].GetStringValue() != "call:mail/send_email" {
		t.Fatalf("the golden request: %v %s", resp.GetStatus(), resp.GetDeniedResponse().GetBody())
	}
	if rec := lastRecord(t, f); rec.Action != "call:mail/send_email" || rec.Status != 200 {
		t.Fatalf("recorded %s %d", rec.Action, rec.Status)
	}

	// The same bytes with another recipient of the same length.
	hr.RawBody = bytes.Replace(hr.RawBody, []byte("ann@ours.example"), []byte("eve@evil.example"), 1)
	resp = check(t, authz, &req)
	if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 403 {
		t.Fatalf("another recipient: %v", resp)
	}
}
