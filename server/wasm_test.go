package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/xds"
)

// TestServeWasmFilterConfiguration: with WASM_FILTER_PATH, an Envoy's ADS
// stream gets the wasm filter's configuration as its own resource (ECDS),
// and a new one carrying each change the filter decides on — an agent
// created, an agent revoked, a policy applied; a policy file that does not
// load is refused and the configurations made after it keep the last good
// policies; the same document is served at GET /v1/filter/config to the
// filter's credential only.
func TestServeWasmFilterConfiguration(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(file, []byte(servicesV1), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := newLogEvents()
	r := runWith(t, configWith(t, func(c *config.Config) {
		c.ServicesFile, c.WasmFilterPath = file, "/etc/envoy/meshguard-filter.wasm"
		c.AdminToken = "wasm-test-admin-token-0123456789"
	}), Options{Logger: slog.New(logs)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := watchFilterConfig(ctx, t, r, "envoy-wasm")

	first := next()
	if first.Version != filterconfig.Version || len(first.Services) != 1 || first.MeshGuard.Cluster != xds.HTTPCluster ||
		!strings.HasPrefix(first.MeshGuard.Token, "mgf2_") || len(first.Policies) != 1 {
		t.Fatalf("first configuration: %+v", first)
	}
	if _, err := filterdecider.New(first, filterdecider.Options{}); err != nil {
		t.Fatalf("the served configuration does not compile: %v", err)
	}

	created, err := r.admin.CreateAgent(ctx, api.CreateAgentRequest{Name: "scout", TrustTier: "verified", Tags: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	second := next()
	if !slices.ContainsFunc(second.Agents, func(a filterconfig.Agent) bool { return a.ID == created.ID }) {
		t.Fatalf("the new agent is not in the configuration: %+v", second.Agents)
	}

	if _, err := r.admin.RevokeAgent(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	third := next()
	if !slices.ContainsFunc(third.RevokedAgents, func(a filterconfig.Agent) bool { return a.ID == created.ID }) {
		t.Fatalf("the revoked agent is not on the revocation list: %+v", third.RevokedAgents)
	}

	if _, err := r.admin.ApplyPolicyYAML(ctx, []byte("name: writers\nappliesTo: {tags: [writer]}\nrules:\n  - {name: w, effect: allow, actions: [\"write:*\"]}\n")); err != nil {
		t.Fatal(err)
	}
	if fourth := next(); len(fourth.Policies) != 2 {
		t.Fatalf("after a policy was applied: %d policies", len(fourth.Policies))
	}

	// A policy file that does not load is read and refused (the server
	// says so); the next configuration, made for an agent created after
	// it, still carries the last good policies.
	mark := logs.mark()
	replaceFile(t, filepath.Join(r.cfg.PoliciesDir, "broken.yaml"), "name: broken\nrules: [{name: r, effect: alow, actions: ['x:y']}]\n")
	logs.wait(t, mark, "the broken policy file refused", func(l logLine) bool {
		return l.msg == "policy reload failed; the last good policy set stays in force" && strings.Contains(l.attrs["error"], "broken.yaml")
	})
	late, err := r.admin.CreateAgent(ctx, api.CreateAgentRequest{Name: "late", TrustTier: "verified"})
	if err != nil {
		t.Fatal(err)
	}
	fifth := next()
	if !slices.ContainsFunc(fifth.Agents, func(a filterconfig.Agent) bool { return a.ID == late.ID }) || len(fifth.Policies) != 2 {
		t.Fatalf("after a broken policy file and a new agent: %d policies, agents %+v", len(fifth.Policies), fifth.Agents)
	}

	// The same document over HTTP, for filters that fetch it; its revision
	// is its ETag.
	get := func(token string, etag ...string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+r.addrs.HTTP+filterprotocol.ConfigPath, nil)
		if token != "" {
			req.Header.Set(filterprotocol.HeaderFilterToken, token)
		}
		for _, e := range etag {
			req.Header.Set("If-None-Match", e)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	cred := first.MeshGuard.Token // the credential minted for this stream's proxy
	if code, body := get(cred); code != 200 || !strings.Contains(body, `"writers"`) {
		t.Fatalf("GET %s: %d %.200s", filterprotocol.ConfigPath, code, body)
	}
	var doc struct{ Revision string }
	_, body := get(cred)
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if code, body := get(cred, `"`+doc.Revision+`"`); code != 304 || body != "" {
		t.Errorf("with the current revision: %d %q, want 304 and no body", code, body)
	}
	// Not the admin token, not the placeholder the shared configuration
	// carries, not the credential shared by every proxy before (an HMAC of
	// the admin token), not a minted credential with its proxy renamed.
	var served struct{ MeshGuard struct{ Token string } }
	if err := json.Unmarshal([]byte(body), &served); err != nil || !strings.HasPrefix(served.MeshGuard.Token, "mgf2-unbound-") {
		t.Errorf("GET %s serves the credential %q, want the unbound placeholder", filterprotocol.ConfigPath, served.MeshGuard.Token)
	}
	parts := strings.Split(cred, ".")
	renamed := "mgf2_" + base64.RawURLEncoding.EncodeToString([]byte("other-proxy")) + "." + parts[1] + "." + parts[2]
	for _, wrong := range []string{"", r.cfg.AdminToken, served.MeshGuard.Token, legacyFilterToken(r.cfg.AdminToken), renamed} {
		if code, _ := get(wrong); code != 401 {
			t.Errorf("GET %s with credential %q: %d, want 401", filterprotocol.ConfigPath, wrong, code)
		}
	}
}

// watchFilterConfig opens an ADS stream to r as node for the wasm filter's
// configuration and returns a function that waits for the next push, ACKs
// it, and returns the configuration it carries.
func watchFilterConfig(ctx context.Context, t *testing.T, r *running, node string) func() *filterconfig.Config {
	t.Helper()
	return watchFilterConfigAs(ctx, t, r, node, testProxyToken)
}

// watchFilterConfigAs is watchFilterConfig for the proxy whose bearer
// credential is token.
func watchFilterConfigAs(ctx context.Context, t *testing.T, r *running, node, token string) func() *filterconfig.Config {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(r.grpc).StreamAggregatedResources(asProxy(ctx, token))
	if err != nil {
		t.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: resourcev3.ExtensionConfigType, ResourceNames: []string{xds.WasmFilter}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	return func() *filterconfig.Config {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetResources()) != 1 {
			t.Fatalf("%d extension configs", len(resp.GetResources()))
		}
		var ext corev3.TypedExtensionConfig
		var w wasmfilterv3.Wasm
		var s wrapperspb.StringValue
		if err := resp.GetResources()[0].UnmarshalTo(&ext); err != nil {
			t.Fatal(err)
		}
		if err := ext.GetTypedConfig().UnmarshalTo(&w); err != nil {
			t.Fatal(err)
		}
		if err := w.GetConfig().GetConfiguration().UnmarshalTo(&s); err != nil {
			t.Fatal(err)
		}
		c, err := filterconfig.Parse([]byte(s.GetValue()))
		if err != nil {
			t.Fatal(err)
		}
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ExtensionConfigType, ResourceNames: []string{xds.WasmFilter},
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if err := stream.Send(ack); err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// legacyFilterToken is the one credential every wasm filter shared before
// filter credentials were minted per proxy: it must open nothing now.
func legacyFilterToken(adminToken string) string {
	mac := hmac.New(sha256.New, []byte(adminToken))
	mac.Write([]byte("meshguard wasm filter credential v1"))
	return "mgf_" + hex.EncodeToString(mac.Sum(nil))
}
