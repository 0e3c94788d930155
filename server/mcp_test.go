package server

import (
	"context"
	"encoding/json"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
)

// TestServedMCPCallsAreRecorded: a served MeshGuard with a config route
// declaring MCP decides a tools/call Envoy sends with its body, and its
// audit record carries the call — the arguments' digest always, the
// arguments themselves (redacted) only with AUDIT_ARGUMENTS.
func TestServedMCPCallsAreRecorded(t *testing.T) {
	const body = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"ann@example.com","password":"hunter2"}}}`
	for _, tc := range []struct {
		name      string
		arguments bool
		want      string // the recorded arguments, "" for none
	}{
		{"digest only", false, ""},
		{"arguments recorded, redacted", true, `{"password":"[redacted]","to":"ann@example.com"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, func(c *config.Config) {
				c.Routes = []engine.Route{{Path: "/mcp", Protocol: agentproto.MCP, Service: "mail"}}
				c.AuditArguments = tc.arguments
				writePolicy(t, c, "mail.yaml", "name: mail\nrules:\n  - {name: mail, effect: allow, actions: [\"call:mail/*\"]}\n")
			})
			tok := r.agent(t, "mailer")
			req := checkRequest(tok, "POST", "/mcp")
			req.Attributes.Request.Http.RawBody = []byte(body)
			resp, err := authv3.NewAuthorizationClient(r.grpc).Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus().GetCode() != int32(code.Code_OK) {
				t.Fatalf("denied: %v", resp)
			}
			var page api.AuditPage
			eventually(t, "the call's record", func() bool {
				page, err = r.admin.QueryAudit(context.Background(), client.AuditFilter{Action: "call:mail/send_email"})
				return err == nil && len(page.Records) == 1
			})
			c := page.Records[0].Call
			if c == nil || c.Protocol != "mcp" || c.Method != "tools/call" || c.Name != "send_email" || c.JSONRPCID != "9" || len(c.ArgumentsDigest) != 64 {
				t.Fatalf("call %+v", c)
			}
			got := ""
			if c.Arguments != nil {
				var v any
				if err := json.Unmarshal(c.Arguments, &v); err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(v)
				got = string(b)
			}
			if got != tc.want {
				t.Fatalf("recorded arguments %s, want %s", got, tc.want)
			}
		})
	}
}
