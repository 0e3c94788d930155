package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/catalog/registry"
	"github.com/meshguard/meshguard/checkapi"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/filterapi"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/xds"
)

const testAdminToken = "mgadm_cli-test-token-0123456789abcdef"

// live is a real MeshGuard HTTP API on 127.0.0.1: the admin API over a real
// engine and SQLite store, with examples/policies as its POLICIES_DIR and
// the policies stored through the API beside them.
type live struct {
	url      string
	dir      string // POLICIES_DIR
	f        *enginetest.Fixture
	xds      *xds.Server // the xDS server /admin/xds/status reports on
	services *registry.Registry
	pushed   atomic.Int64 // catalogues handed to the xDS server
	requests atomic.Int64 // requests the server received
}

func newLive(t *testing.T) *live { return newLiveWith(t, nil) }

// newLiveWith is newLive with the admin API's configuration changed by
// mutate (nil: as it is).
func newLiveWith(t *testing.T, mutate func(*admin.Config)) *live {
	t.Helper()
	l := &live{dir: t.TempDir()}
	entries, err := os.ReadDir(examplePolicies)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(examplePolicies, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l.dir, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.f = enginetest.NewWithSources(t, enginetest.Options{}, func(f *enginetest.Fixture) []policy.Source {
		return []policy.Source{policy.Dir(l.dir), admin.NewStoredPolicies(f.Store)}
	})
	l.xds = xds.NewServer(t.Context(), nil)
	servicesFile := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(servicesFile, []byte("services:\n  - {name: from-file, hosts: [file.mesh], port: 80, endpoints: [\"10.0.0.9:80\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.services = &registry.Registry{File: servicesFile, Store: l.f.Store, Changed: func(ctx context.Context, c *catalog.Catalogue) error {
		r, err := xds.Build(c, xds.Options{ListenerPort: 10000, AuthzHost: "127.0.0.1", AuthzPort: 3101})
		if err != nil {
			return err
		}
		l.pushed.Add(1)
		return l.xds.Update(ctx, r)
	}}
	filters, err := filterapi.New(filterapi.Config{Engine: l.f.Engine, Agents: l.f.Store, Policies: l.f.Policies,
		Generate: func(ctx context.Context) ([]byte, string, error) {
			jwks, err := l.f.Keys.JWKS()
			if err != nil {
				return nil, "", err
			}
			agents, err := l.f.Store.ListAgents(ctx, store.AgentFilter{})
			if err != nil {
				return nil, "", err
			}
			return filterconfig.Generate(filterconfig.Inputs{JWKS: jwks, Agents: agents, Policies: l.f.Policies.Current().Policies(),
				MeshGuard: filterconfig.Upstream{Cluster: xds.HTTPCluster, Token: "mgf2-unbound-0"}})
		}, Authenticate: func(string) (string, error) { return "", errors.New("no proxy in these tests") }})
	if err != nil {
		t.Fatal(err)
	}
	acfg := admin.Config{
		Store: l.f.Store, Keys: l.f.Keys, Issuer: l.f.Issuer, Verifier: l.f.Verifier,
		Tokens: l.f.Cached, Agents: l.f.Agents, Policies: l.f.Policies, PolicyFiles: policy.Dir(l.dir),
		Audit: l.f.Store, XDS: l.xds, Services: l.services, AdminToken: testAdminToken,
		Revocations:  &admin.Revocations{Store: l.f.Store, List: l.f.Revoked},
		FilterConfig: filters.ConfigHandler(),
	}
	if mutate != nil {
		mutate(&acfg)
	}
	api, err := admin.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := checkapi.New(l.f.Engine, nil)
	if err != nil {
		t.Fatal(err)
	}
	approvals, err := approvalapi.New(t.Context(), approvalapi.Config{Store: l.f.Store, Recorder: l.f.Audit})
	if err != nil {
		t.Fatal(err)
	}
	approvalsAPI, err := approvalapi.NewAPI(approvals, l.f.Cached, testAdminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every route of the main port, on one router, as the server has them.
	h := httpjson.NewRouter(nil)
	api.Register(h)
	approvalsAPI.Register(h)
	checks.WithApprovals(approvals).Register(h)
	filters.Register(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	l.url = srv.URL
	return l
}

// env is the environment of a CLI run against l, with the admin token.
func (l *live) env() map[string]string {
	return map[string]string{"MESHGUARD_GATEWAY_URL": l.url, "MESHGUARD_ADMIN_TOKEN": testAdminToken}
}

// mg runs the CLI against l, configured through the environment as a user
// would.
func (l *live) mg(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runEnv(t, l.env(), args...)
}

// must runs the CLI against l and fails the test unless it exits 0.
func (l *live) must(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := l.mg(t, args...)
	if code != 0 {
		t.Fatalf("meshguard %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// runEnv is run with an environment.
func runEnv(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Options{Version: "v0.0.0-test", Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

// decodeJSON decodes out into a generic value, failing the test if it is
// not one JSON document.
func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&v); err != nil || dec.More() {
		t.Fatalf("not one JSON document (%v):\n%s", err, out)
	}
	return v
}

func keysOf(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// verifyToken checks that token is a MeshGuard token of the agent.
func (l *live) verifyToken(t *testing.T, token, agentID string) identity.Verified {
	t.Helper()
	v, err := l.f.Verifier.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if agentID != "" && v.Agent.ID != agentID {
		t.Fatalf("token of %s, want %s", v.Agent.ID, agentID)
	}
	return v
}

var agentIDs = regexp.MustCompile(`agent_[a-z2-7]{20}`)

// normaliseIDs replaces agent ids, which are random, with a placeholder of
// the same length, so tables keep their alignment.
func normaliseIDs(s string) string {
	return agentIDs.ReplaceAllString(s, "agent_"+strings.Repeat("x", 20))
}

func TestOnlineAgentRoundTrip(t *testing.T) {
	l := newLive(t)

	// create: the token alone on stdout, a summary on stderr.
	code, out, errOut := l.mg(t, "agent", "create", "researcher", "--trust", "verified", "--tags", "researcher",
		"--hosts", "researcher.mesh.local", "--metadata", "owner=research@example.com,team=papers", "--ttl", "1h",
		"--spiffe-id", "spiffe://cluster.local/ns/research/sa/researcher", "--spiffe-id", "spiffe://cluster.local/ns/research/sa/researcher-v2")
	if code != 0 || !strings.HasPrefix(out, "eyJ") || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("create: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "✓ created agent researcher (agent_") || !strings.Contains(errOut, "tier verified, tags researcher, hosts researcher.mesh.local, "+
		"SPIFFE IDs spiffe://cluster.local/ns/research/sa/researcher,spiffe://cluster.local/ns/research/sa/researcher-v2") {
		t.Errorf("create summary: %q", errOut)
	}
	researcherToken := strings.TrimSpace(out)
	v, err := l.f.Verifier.Verify(context.Background(), researcherToken)
	if err != nil || v.Agent.Name != "researcher" || v.Tier.String() != "verified" {
		t.Fatalf("the printed token: %+v, %v", v, err)
	}
	if exp := time.Until(v.Claims.ExpiresAt); exp > time.Hour || exp < 58*time.Minute {
		t.Errorf("--ttl 1h: token expires in %v", exp)
	}
	researcherID := v.Agent.ID

	// create --json: the shape of docs/cli.md, plus expiresAt.
	out = l.must(t, "agent", "create", "emailer", "--trust", "verified", "--tags", "emailer", "--json")
	created := decodeJSON[map[string]any](t, out)
	if diff := cmp.Diff([]string{"expiresAt", "hosts", "id", "name", "tags", "token", "trustTier"}, keysOf(created)); diff != "" {
		t.Errorf("create --json keys (-want +got):\n%s", diff)
	}
	if created["name"] != "emailer" || created["trustTier"] != "verified" || !cmp.Equal(created["tags"], []any{"emailer"}) || !cmp.Equal(created["hosts"], []any{}) {
		t.Errorf("create --json: %v", created)
	}
	l.verifyToken(t, created["token"].(string), created["id"].(string))

	// create --output --quiet: nothing printed, the token in a 0600 file.
	tokenFile := filepath.Join(t.TempDir(), "orchestrator.jwt")
	code, out, errOut = l.mg(t, "agent", "create", "orchestrator", "--trust", "trusted", "--tags", "orchestrator,planner", "--output", tokenFile, "--quiet")
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("create --output --quiet: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	st, err := os.Stat(tokenFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", st, err)
	}
	data, _ := os.ReadFile(tokenFile)
	if v, err := l.f.Verifier.Verify(context.Background(), string(data)); err != nil || v.Agent.Name != "orchestrator" {
		t.Fatalf("token file content: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(tokenFile)); len(entries) != 1 {
		t.Errorf("temporary files left beside the token: %v", entries)
	}

	// list: a readable table, in name order.
	out = l.must(t, "agent", "list")
	golden(t, "agent-list.golden", normaliseIDs(out))
	if !strings.Contains(out, researcherID) {
		t.Errorf("list lacks the researcher's id %s:\n%s", researcherID, out)
	}
	// Every page is listed.
	defer func(n int) { agentPageSize = n }(agentPageSize)
	agentPageSize = 2
	if paged := l.must(t, "agent", "list"); paged != out {
		t.Errorf("list in pages of 2:\n%s\nwant\n%s", paged, out)
	}
	agentPageSize = 1000

	// list --json: an array of agents; filters.
	agents := decodeJSON[[]identity.Agent](t, l.must(t, "agent", "list", "--json"))
	if len(agents) != 3 || agents[0].Name != "emailer" || agents[2].Metadata["owner"] != "research@example.com" {
		t.Errorf("list --json: %+v", agents)
	}
	filters := []struct {
		args []string
		want []string
	}{
		{[]string{"--trust", "verified"}, []string{"emailer", "researcher"}},
		{[]string{"--trust", "trusted", "--status", "active"}, []string{"orchestrator"}},
		{[]string{"--tag", "planner"}, []string{"orchestrator"}},
		{[]string{"--status", "revoked"}, []string{}},
	}
	for _, f := range filters {
		got := []string{}
		for _, a := range decodeJSON[[]identity.Agent](t, l.must(t, append([]string{"agent", "list", "--json"}, f.args...)...)) {
			got = append(got, a.Name)
		}
		if !slices.Equal(got, f.want) {
			t.Errorf("list %v: %v, want %v", f.args, got, f.want)
		}
	}
	if out := l.must(t, "agent", "list", "--status", "revoked"); out != "no agents\n" {
		t.Errorf("empty list: %q", out)
	}

	// show, by name and by id.
	out = l.must(t, "agent", "show", "researcher")
	for _, want := range []string{"id:         " + researcherID + "\n", "name:       researcher\n", "trust tier: verified\n",
		"status:     active\n", "tags:       researcher\n", "hosts:      researcher.mesh.local\n",
		"spiffe ids: spiffe://cluster.local/ns/research/sa/researcher, spiffe://cluster.local/ns/research/sa/researcher-v2\n",
		"metadata:   owner=research@example.com, team=papers\n", "created:    20"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	shown := decodeJSON[map[string]any](t, l.must(t, "agent", "show", researcherID, "--json"))
	if diff := cmp.Diff([]string{"createdAt", "hosts", "id", "metadata", "name", "spiffeIds", "status", "tags", "trustTier", "updatedAt"}, keysOf(shown)); diff != "" {
		t.Errorf("show --json keys (-want +got):\n%s", diff)
	}

	// update: only the flags given change.
	out = l.must(t, "agent", "update", "researcher", "--trust", "trusted", "--tags", "researcher, papers")
	if !strings.Contains(out, "✓ updated agent researcher ("+researcherID+")") || !strings.Contains(out, "trust tier: trusted") ||
		!strings.Contains(out, "tags:       researcher, papers") || !strings.Contains(out, "hosts:      researcher.mesh.local") ||
		!strings.Contains(out, "owner=research@example.com") {
		t.Errorf("update:\n%s", out)
	}
	// A SPIFFE ID another agent holds: refused, naming the holder.
	code, _, errOut = l.mg(t, "agent", "update", "emailer", "--spiffe-id", "spiffe://cluster.local/ns/research/sa/researcher")
	if code == 0 || !strings.Contains(errOut, researcherID) {
		t.Errorf("update to a taken SPIFFE ID: exit %d, stderr %q", code, errOut)
	}
	updated := decodeJSON[identity.Agent](t, l.must(t, "agent", "update", researcherID, "--spiffe-id", "spiffe://cluster.local/ns/research/sa/researcher-v3", "--json"))
	if !slices.Equal(updated.SPIFFEIDs, []string{"spiffe://cluster.local/ns/research/sa/researcher-v3"}) || len(updated.Hosts) != 1 {
		t.Errorf("update replacing the SPIFFE IDs: %+v", updated)
	}
	updated = decodeJSON[identity.Agent](t, l.must(t, "agent", "update", researcherID, "--hosts", "", "--metadata", "", "--spiffe-id", "", "--json"))
	if len(updated.Hosts) != 0 || len(updated.Metadata) != 0 || len(updated.SPIFFEIDs) != 0 || updated.TrustTier.String() != "trusted" || len(updated.Tags) != 2 {
		t.Errorf("update clearing hosts, SPIFFE IDs and metadata: %+v", updated)
	}
	renamed := decodeJSON[identity.Agent](t, l.must(t, "agent", "update", "emailer", "--name", "mailer", "--json"))
	if renamed.Name != "mailer" || renamed.TrustTier.String() != "verified" || !slices.Equal(renamed.Tags, []string{"emailer"}) {
		t.Errorf("rename: %+v", renamed)
	}

	// token: a new token, alone on stdout; --json; --output.
	code, out, errOut = l.mg(t, "agent", "token", "researcher", "--ttl", "30m")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "✓ new token for agent researcher ("+researcherID+")") {
		t.Fatalf("token: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	v = l.verifyToken(t, strings.TrimSpace(out), researcherID)
	if exp := time.Until(v.Claims.ExpiresAt); exp > 30*time.Minute || exp < 28*time.Minute {
		t.Errorf("--ttl 30m: token expires in %v", exp)
	}
	issued := decodeJSON[map[string]any](t, l.must(t, "agent", "token", researcherID, "--json"))
	if diff := cmp.Diff([]string{"agentId", "expiresAt", "token"}, keysOf(issued)); diff != "" || issued["agentId"] != researcherID {
		t.Errorf("token --json (-want +got keys):\n%s%v", diff, issued)
	}
	tokenFile = filepath.Join(t.TempDir(), "researcher.jwt")
	if err := os.WriteFile(tokenFile, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	issued = decodeJSON[map[string]any](t, l.must(t, "agent", "token", "researcher", "--output", tokenFile, "--json"))
	if _, ok := issued["token"]; ok || issued["tokenFile"] != tokenFile {
		t.Errorf("token --output --json: %v", issued)
	}
	if st, err := os.Stat(tokenFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("replaced token file: %v, %v", st, err)
	}
	data, _ = os.ReadFile(tokenFile)
	l.verifyToken(t, string(data), researcherID)

	// revoke: the tokens stop working; no new ones.
	out = l.must(t, "agent", "revoke", "researcher")
	if out != "✓ revoked agent researcher ("+researcherID+"): its tokens are refused from now on\n" {
		t.Errorf("revoke: %q", out)
	}
	if _, err := l.f.Verifier.Verify(context.Background(), researcherToken); err == nil {
		t.Error("a revoked agent's token still verifies")
	}
	revoked := decodeJSON[identity.Agent](t, l.must(t, "agent", "revoke", researcherID, "--json"))
	if revoked.Status != api.AgentRevoked {
		t.Errorf("revoke twice --json: %+v", revoked)
	}
	if code, _, errOut := l.mg(t, "agent", "token", "researcher"); code != ExitFailure || !strings.Contains(errOut, "is revoked") {
		t.Errorf("token for a revoked agent: exit %d, %q", code, errOut)
	}
	got := decodeJSON[[]identity.Agent](t, l.must(t, "agent", "list", "--status", "revoked", "--json"))
	if len(got) != 1 || got[0].ID != researcherID {
		t.Errorf("list --status revoked: %+v", got)
	}
}

const supportPolicy = `# Support agents read tickets and answer them.
name: support
version: "1.0"
appliesTo: {tags: [support]}
rules:
  - {name: reads, effect: allow, actions: ["read:tickets/*"]}
  - {name: answers, effect: allow, actions: ["write:tickets/*"]}
`

const ticketsPolicy = `name: tickets
appliesTo: {tags: [tickets]}
rules:
  - {name: triage, effect: allow, actions: ["write:tickets/*"]}
`
