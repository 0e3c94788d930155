package main

import (
	"context"
	"encoding/json"
	"errors"
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
	if err := w.approval(ctx); err != nil {
		return err
	}
	return w.audit(ctx)
}

// approvalTrace is the trace of the deploy that waits for a person.
const approvalTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

// approvalPolicy holds every production deploy for a person's approval.
const approvalPolicy = `name: deploys
appliesTo: {tags: [deployer]}
rules:
  - {name: production, effect: approve, actions: ["deploy:prod/*"], approvers: [release-managers]}
`

// approval walks human approval: a deploy held for a person, listed and
// approved with the CLI, then allowed once; the trail shows each step.
func (w *walk) approval(ctx context.Context) error {
	w.say("\n== Human approval: every production deploy waits for a person (policy deploys, effect: approve)")
	if _, err := w.api.ApplyPolicyYAML(ctx, []byte(approvalPolicy)); err != nil {
		return fmt.Errorf("applying the deploys policy: %w", err)
	}
	got, err := w.api.CreateAgent(ctx, api.CreateAgentRequest{Name: "deployer", TrustTier: "verified", Tags: []string{"deployer"}})
	if err != nil {
		return fmt.Errorf("creating the deployer: %w", err)
	}
	w.tokens["deployer"], w.ids["deployer"] = got.Token, got.ID
	id, err := w.deploy(ctx, "the deployer deploys web 1.4.2 to production")
	if err != nil {
		return err
	}
	if err := w.mg(ctx, "(meshguard approvals list --status pending)", "approvals", "list", "--status", "pending"); err != nil {
		return err
	}
	if err := w.mg(ctx, "(meshguard approvals approve "+id+" --by demo --reason \"change 42\")",
		"approvals", "approve", id, "--by", "demo", "--reason", "change 42"); err != nil {
		return err
	}
	if _, err := w.deploy(ctx, "the deployer retries the same deploy"); err != nil {
		return err
	}
	// Records are written in groups every AUDIT_FLUSH_MS: wait for the three.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		page, err := w.api.QueryAudit(ctx, client.AuditFilter{TraceID: approvalTrace})
		if err != nil {
			return err
		}
		if len(page.Records) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d audit records of the deploy, want 3", len(page.Records))
		}
	}
	return w.mg(ctx, "(meshguard audit tail --trace "+approvalTrace+": requested, approved, granted — the approval used)", "audit", "tail", "--trace", approvalTrace)
}

// deploy asks POST /v1/check, as an SDK does, about the deployer's deploy
// and prints the decision; it returns the approval a 403 names.
func (w *walk) deploy(ctx context.Context, step string) (string, error) {
	agent := w.api.WithAgentToken(w.tokens["deployer"])
	d, err := agent.Check(ctx, api.CheckRequest{Action: "deploy:prod/web", Resource: "/services/web",
		Context: map[string]any{"version": "1.4.2"}, TraceParent: "00-" + approvalTrace + "-00f067aa0ba902b7-01"})
	var ae *client.APIError
	if err != nil && !errors.As(err, &ae) {
		return "", fmt.Errorf("%s: %w", step, err)
	}
	w.seen = append(w.seen, seen{step: step, status: d.Status, reason: d.Reason})
	verdict := "ALLOW  " + d.Reason + ": " + d.Message
	if !d.Allowed {
		verdict = fmt.Sprintf("DENY %d %s: approval_id %s, follow it at %s", d.Status, d.Reason, d.ApprovalID, d.ApprovalURL)
	}
	w.say("   [/v1/check] %-50s deploy:prod/web\n               → %s", step, verdict)
	return d.ApprovalID, nil
}

// mg runs the CLI as an operator would, with the admin token.
func (w *walk) mg(ctx context.Context, title string, args ...string) error {
	w.say("   %s", title)
	env := map[string]string{"MESHGUARD_GATEWAY_URL": w.http, "MESHGUARD_ADMIN_TOKEN": w.admin}
	if code := cli.Main(ctx, args, cli.Options{Stdout: w.out, Stderr: w.out, Getenv: func(k string) string { return env[k] }}); code != 0 {
		return fmt.Errorf("meshguard %s: exit %d", strings.Join(args, " "), code)
	}
	return nil
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
