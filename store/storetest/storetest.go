// Package storetest is the conformance suite every store backend must pass,
// so that SQLite and PostgreSQL behave the same to their callers: same
// errors, same ordering, same time precision, same atomicity.
//
// A backend's own test calls Run:
//
//	func TestConformance(t *testing.T) {
//		dir := t.TempDir()
//		storetest.Run(t, func(t *testing.T) storetest.Backend {
//			s, err := store.OpenSQLite(t.Context(), filepath.Join(dir, storetest.FileName(t)))
//			...
//		})
//	}
package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// Backend is the method set every store backend provides.
type Backend interface {
	identity.AgentSource
	identity.KeyStore
	CreateAgent(ctx context.Context, a identity.Agent) (identity.Agent, error)
	GetAgentByName(ctx context.Context, name string) (identity.Agent, error)
	AgentByHost(ctx context.Context, host string) (identity.Agent, error)
	AgentBySPIFFEID(ctx context.Context, id string) (identity.Agent, error)
	ListAgents(ctx context.Context, f store.AgentFilter) ([]identity.Agent, error)
	UpdateAgent(ctx context.Context, a identity.Agent) (identity.Agent, error)
	RevokeAgent(ctx context.Context, id string) error
	CountActiveAgents(ctx context.Context) (int64, error)
	PutPolicy(ctx context.Context, name, yaml string) (store.StoredPolicy, error)
	PutPolicies(ctx context.Context, ps []store.StoredPolicy) ([]store.StoredPolicy, error)
	GetPolicy(ctx context.Context, name string) (store.StoredPolicy, error)
	ListPolicies(ctx context.Context) ([]store.StoredPolicy, error)
	DeletePolicy(ctx context.Context, name string) error
	AuditBackend
	PutService(ctx context.Context, name, spec string) error
	ListServices(ctx context.Context) ([]store.StoredService, error)
	DeleteService(ctx context.Context, name string) error
	EnqueueAlerts(ctx context.Context, alerts []store.OutboxAlert) error
	ClaimAlerts(ctx context.Context, provider string, now time.Time, lease time.Duration, limit int) ([]store.OutboxAlert, error)
	AlertDelivered(ctx context.Context, id int64) error
	AlertFailed(ctx context.Context, id int64, next time.Time, reason string) error
	CountOutbox(ctx context.Context) (map[string]int, error)
	RevokeToken(ctx context.Context, r identity.RevokedToken) (identity.RevokedToken, bool, error)
	ListRevokedTokens(ctx context.Context, after string, limit int) ([]identity.RevokedToken, error)
	ApprovalBackend
	SecretBackend
	Close() error
}

// Run runs the suite. Subtests run in parallel.
//
// open must return a Backend whose storage is empty the first time it is
// called for a given t, and which holds the same data when called again for
// the same t after the first Backend was closed: that is how the suite
// checks that a reopened store keeps its data. The suite closes what it
// opens; open may register its own cleanup too, so Close must tolerate a
// second call. The backend must stamp times with the wall clock.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	t.Helper()
	groups := []struct {
		name  string
		tests []test
	}{
		{"Agents", agentTests()},
		{"Keys", keyTests()},
		{"Policies", policyTests()},
		{"Durability", durabilityTests()},
		{"Audit", auditTests()},
		{"Services", serviceTests()},
		{"Outbox", outboxTests()},
		{"RevokedTokens", revokedTests()},
		{"Approvals", approvalTests()},
		{"Secrets", secretTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, open)
				})
			}
		})
	}
}

// FileName turns t's name into something usable as a file or schema name,
// unique among the suite's subtests, for open functions that need one.
func FileName(t *testing.T) string {
	return strings.NewReplacer("/", "__", " ", "_", ":", "_").Replace(t.Name())
}

type test struct {
	name string
	run  func(t *testing.T, open func(t *testing.T) Backend)
}

// openClosed opens a backend for t and closes it when t ends.
func openClosed(t *testing.T, open func(t *testing.T) Backend) Backend {
	t.Helper()
	b := open(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// newAgent returns a valid agent named name, changed by mods.
func newAgent(name string, mods ...func(*identity.Agent)) identity.Agent {
	a := identity.Agent{Name: name, TrustTier: trust.Verified, Status: identity.StatusActive}
	for _, m := range mods {
		m(&a)
	}
	return a
}

func mustCreate(t *testing.T, b Backend, a identity.Agent) identity.Agent {
	t.Helper()
	got, err := b.CreateAgent(t.Context(), a)
	if err != nil {
		t.Fatalf("CreateAgent(%q): %v", a.Name, err)
	}
	return got
}

// state is everything a backend holds, for checking that a failed call
// changed nothing.
type state struct {
	Agents   []identity.Agent
	Keys     []identity.StoredKey
	Policies []store.StoredPolicy
}

func snapshot(t *testing.T, b Backend) state {
	t.Helper()
	agents, err := b.ListAgents(t.Context(), store.AgentFilter{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	keys, err := b.ListKeys(t.Context())
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	policies, err := b.ListPolicies(t.Context())
	if err != nil {
		t.Fatalf("ListPolicies: %v", err)
	}
	return state{agents, keys, policies}
}

func wantUnchanged(t *testing.T, b Backend, before state) {
	t.Helper()
	if diff := cmp.Diff(before, snapshot(t, b)); diff != "" {
		t.Errorf("a failed call changed what is stored (-before +after):\n%s", diff)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

// checkStamp checks a time the backend stamped after start: UTC, to the
// microsecond, and about now (a second of slack for a backend whose clock is
// a database server's).
func checkStamp(t *testing.T, what string, got, start time.Time) {
	t.Helper()
	const skew = time.Second
	if got.Location() != time.UTC {
		t.Errorf("%s = %v, want UTC", what, got)
	}
	if got.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v, want microsecond precision", what, got)
	}
	if got.Before(start.Add(-skew)) || got.After(time.Now().Add(skew)) {
		t.Errorf("%s = %v, want between %v and now", what, got, start)
	}
}
