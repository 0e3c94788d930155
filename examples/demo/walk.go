package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/cli"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine"
)

// walk is the scripted tour; it records every decision so a test can check
// the story it tells.
type walk struct {
	out         io.Writer
	http, grpc  string
	admin       string
	tokens, ids map[string]string
	// trace, if set, is the trace id the ext_authz calls carry in their
	// traceparent, each from a span of its own, as agents propagating one
	// trace would send them.
	trace string
	spans int
	authz authv3.AuthorizationClient
	api   *client.Client
	seen  []seen
}

// seen is one decision as the demo printed it.
type seen struct {
	step, reason string
	status       int
	delegation   string
}

func (w *walk) run(ctx context.Context) error {
	mg, err := client.New(client.Config{BaseURL: w.http, AdminToken: w.admin})
	if err != nil {
		return err
	}
	w.api = mg
	conn, err := grpc.NewClient(w.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	w.authz = authv3.NewAuthorizationClient(conn)
	w.tokens, w.ids = map[string]string{}, map[string]string{}

	w.say("\n== Three agents, each reached under its own host in the mesh")
	for _, a := range []struct{ name, tier, tag, host string }{
		{"orchestrator", "trusted", "orchestrator", "orchestrator.mesh"},
		{"researcher", "verified", "researcher", "researcher.mesh"},
		{"emailer", "verified", "emailer", "emailer.mesh"},
	} {
		got, err := mg.CreateAgent(ctx, api.CreateAgentRequest{Name: a.name, TrustTier: a.tier, Tags: []string{a.tag}, Hosts: []string{a.host}})
		if err != nil {
			return fmt.Errorf("creating %s: %w", a.name, err)
		}
		w.tokens[a.name], w.ids[a.name] = got.Token, got.ID
		w.say("   %-12s %-9s tag %-12s host %-18s %s", a.name, a.tier, a.tag, a.host, got.ID)
	}

	w.say("\n== A delegation chain through Envoy's ext_authz gRPC API: orchestrator → researcher → emailer")
	// Only the first call carries a traceparent: the delegation tokens
	// carry the trace on, each hop under the one that handed it the task.
	w.trace = demoTrace
	toResearcher, err := w.envoy(ctx, "orchestrator asks the researcher to research", "orchestrator", "", "POST", "researcher.mesh", "/tasks/research")
	if err != nil {
		return err
	}
	w.trace = ""
	toEmailer, err := w.envoy(ctx, "the researcher asks the emailer for contacts", "researcher", toResearcher, "GET", "emailer.mesh", "/contacts")
	if err != nil {
		return err
	}
	if _, err := w.envoy(ctx, "the emailer reads contacts, acting for both", "emailer", toEmailer, "GET", "crm.internal", "/contacts"); err != nil {
		return err
	}

	w.say("\n== Denials a chain runs into")
	if _, err := w.envoy(ctx, "ceiling: the researcher writes notes for the orchestrator", "researcher", toResearcher, "POST", "notes.internal", "/notes/plan"); err != nil {
		return err
	}
	toOrch, err := w.envoy(ctx, "the researcher hands a task to the orchestrator", "researcher", "", "GET", "orchestrator.mesh", "/papers")
	if err != nil {
		return err
	}
	if _, err := w.envoy(ctx, "depth: which hands it on to the emailer", "orchestrator", toOrch, "GET", "emailer.mesh", "/contacts"); err != nil {
		return err
	}
	if _, err := w.envoy(ctx, "not permitted: the emailer may not delegate", "emailer", "", "GET", "researcher.mesh", "/contacts"); err != nil {
		return err
	}

	w.say("\n== The built-in gateway (/proxy/* → an upstream), same engine")
	if err := w.gateway(ctx, "the researcher reads a paper", "researcher", "GET", "/proxy/papers/agents"); err != nil {
		return err
	}
	if err := w.gateway(ctx, "the emailer tries to delete a contact", "emailer", "DELETE", "/proxy/contacts/42"); err != nil {
		return err
	}
	if err := w.gateway(ctx, "no credential at all", "", "GET", "/proxy/papers/agents"); err != nil {
		return err
	}

	w.say("\n== Revoking the researcher stops it and every chain it is part of")
	if _, err := mg.RevokeAgent(ctx, "researcher"); err != nil {
		return err
	}
	if _, err := w.envoy(ctx, "the emailer, still acting for the researcher", "emailer", toEmailer, "GET", "crm.internal", "/contacts"); err != nil {
		return err
	}
	if _, err := w.envoy(ctx, "the researcher itself", "researcher", "", "GET", "papers.internal", "/papers"); err != nil {
		return err
	}
	return w.audit(ctx)
}

// demoTrace is the trace of the delegation chain.
const demoTrace = "0af7651916cd43dd8448eb211c80319c"

// audit shows the trail the walk left, with the CLI an operator would use.
func (w *walk) audit(ctx context.Context) error {
	// Records are written in groups every AUDIT_FLUSH_MS: wait for the last.
	for deadline := time.Now().Add(5 * time.Second); ; {
		page, err := w.api.QueryAudit(ctx, client.AuditFilter{Limit: 100})
		if err != nil {
			return err
		}
		if len(page.Records) >= len(w.seen) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d audit records, want %d", len(page.Records), len(w.seen))
		}
		time.Sleep(20 * time.Millisecond)
	}
	env := map[string]string{"MESHGUARD_GATEWAY_URL": w.http, "MESHGUARD_ADMIN_TOKEN": w.admin}
	for _, c := range []struct {
		title string
		args  []string
	}{
		{"\n== The audit trail: the chain as one trace (meshguard audit trace " + demoTrace + ")", []string{"audit", "trace", demoTrace}},
		{"\n== What was denied (meshguard audit query --decision deny)", []string{"audit", "query", "--decision", "deny"}},
		{"\n== Nothing was tampered with (meshguard audit verify)", []string{"audit", "verify"}},
	} {
		w.say("%s", c.title)
		if code := cli.Main(ctx, c.args, cli.Options{Stdout: w.out, Stderr: w.out, Getenv: func(k string) string { return env[k] }}); code != 0 {
			return fmt.Errorf("meshguard %s: exit %d", strings.Join(c.args, " "), code)
		}
	}
	return nil
}

func (w *walk) say(format string, args ...any) { fmt.Fprintf(w.out, format+"\n", args...) }

// envoy sends a CheckRequest as Envoy builds it for agent's call and prints
// the decision; it returns the delegation token minted for the target.
func (w *walk) envoy(ctx context.Context, step, agent, delegation, method, host, path string) (string, error) {
	headers := map[string]string{":authority": host, ":method": method, ":path": path,
		"authorization": "Bearer " + w.tokens[agent], "x-request-id": "demo"}
	if delegation != "" {
		headers["x-meshguard-delegation"] = delegation
	}
	if w.trace != "" {
		w.spans++
		headers["traceparent"] = fmt.Sprintf("00-%s-%016x-01", w.trace, w.spans)
	}
	resp, err := w.authz.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 41000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Host: host, Path: path, Headers: headers}},
	}})
	if err != nil {
		return "", fmt.Errorf("%s: %w", step, err)
	}
	s := seen{step: step, status: 200}
	var verdict string
	if ok := resp.GetOkResponse(); ok != nil {
		for _, h := range ok.GetHeaders() {
			if h.GetHeader().GetKey() == engine.HeaderDelegation {
				s.delegation = h.GetHeader().GetValue()
			}
		}
		s.reason = metadata(resp, "reason")
		verdict = "ALLOW  " + s.reason + " (" + metadata(resp, "policy") + ")"
		if s.delegation != "" {
			verdict += " + delegation token for " + host
		}
	} else {
		d := resp.GetDeniedResponse()
		s.status = int(d.GetStatus().GetCode())
		s.reason = jsonField(d.GetBody(), "reason")
		verdict = fmt.Sprintf("DENY %d %s: %s", s.status, s.reason, jsonField(d.GetBody(), "message"))
	}
	w.seen = append(w.seen, s)
	w.say("   [ext_authz] %-52s %s %s%s\n               → %s", step, method, host, path, verdict)
	return s.delegation, nil
}

// gateway calls /proxy/* as agent and prints what came back.
func (w *walk) gateway(ctx context.Context, step, agent, method, path string) error {
	req, err := http.NewRequestWithContext(ctx, method, w.http+path, nil)
	if err != nil {
		return err
	}
	if agent != "" {
		req.Header.Set("Authorization", "Bearer "+w.tokens[agent])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	s := seen{step: step, status: res.StatusCode, reason: jsonField(string(body), "reason")}
	w.seen = append(w.seen, s)
	w.say("   [gateway]   %-52s %s %s\n               → %d %s", step, method, path, res.StatusCode, strings.TrimSpace(string(body)))
	return nil
}

func metadata(resp *authv3.CheckResponse, key string) string {
	return resp.GetDynamicMetadata().GetFields()[key].GetStringValue()
}

// jsonField reads one string field of a JSON object body ("" if absent).
func jsonField(body, key string) string {
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}
