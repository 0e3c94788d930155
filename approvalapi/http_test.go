package approvalapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
)

const adminToken = "mgadm_approvalapi-test-0123456789"

// fixture is a Service and its API over a real SQLite store, served on
// loopback behind a read deadline as the server sets one.
type fixture struct {
	db   *store.SQLite
	svc  *approvalapi.Service
	base string
	stop context.CancelFunc // ends the service: the server's shutdown
}

func newFixture(t *testing.T, cfg approvalapi.Config, readDeadline time.Duration) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	cfg.Store = db
	svc, err := approvalapi.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := identity.NewKeyring(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.VerifierConfig{Keys: kr, Agents: db})
	if err != nil {
		t.Fatal(err)
	}
	a, err := approvalapi.NewAPI(svc, identity.NewCachedVerifier(v, identity.CacheConfig{}), adminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Register(mux)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(readDeadline))
		mux.ServeHTTP(w, r)
	})}
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() { _ = hs.Close() })
	return &fixture{db: db, svc: svc, base: "http://" + lis.Addr().String(), stop: cancel}
}

// raise stores a pending approval of a request to resource.
func (f *fixture) raise(t *testing.T, resource string) string {
	t.Helper()
	now := time.Now()
	b := approval.Binding{AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "send:mail", Resource: resource}
	digest, err := b.Digest()
	if err != nil {
		t.Fatal(err)
	}
	a, outcome, err := f.db.RequestApproval(context.Background(), approval.Approval{
		ID: approval.NewID(now), Binding: digest, AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "send:mail",
		Resource: resource, Policy: "p", Rule: "r", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}, now)
	if err != nil || outcome != approval.OutcomeRequested {
		t.Fatalf("raising: %v %v", outcome, err)
	}
	return a.ID
}

func (f *fixture) get(t *testing.T, ctx context.Context, path string) (int, http.Header, api.Approval) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(api.HeaderAdminToken, adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", path, err)
		return 0, nil, api.Approval{}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out api.Approval
	if res.StatusCode == 200 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Errorf("GET %s: 200 %q: %v", path, body, err)
		}
	}
	return res.StatusCode, res.Header, out
}

// waitFor polls cond (for a state that will come) with a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestWaitOutlastsTheReadDeadline: a long poll longer than the server's
// read deadline (1 s here, 30 s in the server) is answered at its own
// deadline with the approval as it stands, not cut off with no answer.
func TestWaitOutlastsTheReadDeadline(t *testing.T) {
	f := newFixture(t, approvalapi.Config{}, time.Second)
	id := f.raise(t, "/mail/1")
	code, _, a := f.get(t, context.Background(), "/v1/approvals/"+id+"?wait=2")
	if code != 200 || a.ID != id || a.Status != "pending" {
		t.Fatalf("%d %+v", code, a)
	}
}

// TestWaitersAreBounded: past MaxWaiters a wait is a 503 with Retry-After,
// and the waiter in place still gets its decision.
func TestWaitersAreBounded(t *testing.T) {
	f := newFixture(t, approvalapi.Config{MaxWaiters: 1}, time.Minute)
	id := f.raise(t, "/mail/1")
	done := make(chan api.Approval, 1)
	go func() {
		_, _, a := f.get(t, context.Background(), "/v1/approvals/"+id+"?wait=60")
		done <- a
	}()
	waitFor(t, "the first waiter", func() bool { return f.svc.Waiters() == 1 })
	code, h, _ := f.get(t, context.Background(), "/v1/approvals/"+id+"?wait=60")
	if code != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("the second waiter: %d %v", code, h)
	}
	if code, _, a := f.get(t, context.Background(), "/v1/approvals/"+id); code != 200 || a.Status != "pending" {
		t.Fatalf("a read without a wait: %d %+v", code, a)
	}
	if _, err := f.svc.Decide(context.Background(), approval.Decision{ID: id, Approve: true, By: "alice"}, approvalapi.SourceLink); err != nil {
		t.Fatal(err)
	}
	if a := <-done; a.Status != "approved" || a.DecidedBy != "alice" {
		t.Fatalf("the first waiter: %+v", a)
	}
}

// TestShutdownEndsWaits: when the server shuts down, a waiter is answered
// at once with the approval as it stands.
func TestShutdownEndsWaits(t *testing.T) {
	f := newFixture(t, approvalapi.Config{}, time.Minute)
	id := f.raise(t, "/mail/1")
	done := make(chan api.Approval, 1)
	// The caller gives up long before the wait's own 60 s: only the
	// shutdown can answer it in time (this bounds a broken build; no
	// timing is asserted).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		_, _, a := f.get(t, ctx, "/v1/approvals/"+id+"?wait=60")
		done <- a
	}()
	waitFor(t, "the waiter", func() bool { return f.svc.Waiters() == 1 })
	f.stop()
	if a := <-done; a.ID != id || a.Status != "pending" {
		t.Fatalf("%+v", a)
	}
}

// TestDecideRefuses: Decide refuses a source it does not know and unclean
// names, changing nothing.
func TestDecideRefuses(t *testing.T) {
	f := newFixture(t, approvalapi.Config{}, time.Minute)
	id := f.raise(t, "/mail/1")
	for _, tc := range []struct {
		name string
		d    approval.Decision
		src  approvalapi.Source
	}{
		{"an unknown source", approval.Decision{ID: id, Approve: true, By: "alice"}, "cli"},
		{"invalid UTF-8", approval.Decision{ID: id, Approve: true, By: "al\xffice"}, approvalapi.SourceAdmin},
		{"a line separator", approval.Decision{ID: id, Approve: true, By: "alice\u2028x"}, approvalapi.SourceAdmin},
		{"a right-to-left override", approval.Decision{ID: id, Approve: true, By: "\u202eecila"}, approvalapi.SourceAdmin},
		{"a control character in the reason", approval.Decision{ID: id, Approve: true, By: "alice", Reason: "ok\r\nforged"}, approvalapi.SourceAdmin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.svc.Decide(context.Background(), tc.d, tc.src); !errors.Is(err, approval.ErrInvalid) {
				t.Fatalf("%v, want ErrInvalid", err)
			}
		})
	}
	if a, err := f.db.GetApproval(context.Background(), id); err != nil || a.Status != approval.Pending {
		t.Fatalf("after the refusals: %+v %v", a, err)
	}
}

func TestParseWait(t *testing.T) {
	for _, tc := range []struct {
		name, query, prefer string
		want                time.Duration
		fromPrefer          bool
		err                 string
	}{
		{"none", "", "", 0, false, ""},
		{"query", "wait=5", "", 5 * time.Second, false, ""},
		{"prefer", "", "wait=7", 7 * time.Second, true, ""},
		{"prefer among others", "", "respond-async, wait=3;x=y", 3 * time.Second, true, ""},
		{"prefer, other case", "", "Wait=60", 60 * time.Second, true, ""},
		{"the query wins", "wait=2", "wait=9", 2 * time.Second, false, ""},
		{"other preferences only", "", "return=minimal", 0, false, ""},
		{"zero", "wait=0", "", 0, false, "from 1 to 60"},
		{"61", "", "wait=61", 0, false, "from 1 to 60"},
		{"negative", "wait=-1", "", 0, false, "from 1 to 60"},
		{"a fraction", "wait=1.5", "", 0, false, "from 1 to 60"},
		{"empty", "wait=", "", 0, false, "from 1 to 60"},
		{"twice in Prefer", "", "wait=1, wait=2", 0, false, "twice"},
		{"an oversized Prefer", "", strings.Repeat("x", 1025), 0, false, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest("GET", "http://x/v1/approvals/a?"+tc.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.prefer != "" {
				r.Header.Set("Prefer", tc.prefer)
			}
			got, fromPrefer, err := approvalapi.ParseWait(r, true)
			if tc.err != "" {
				if !errors.Is(err, approvalapi.ErrBadWait) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("%v, want ErrBadWait saying %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || fromPrefer != tc.fromPrefer {
				t.Fatalf("%v %v %v, want %v %v", got, fromPrefer, err, tc.want, tc.fromPrefer)
			}
		})
	}
}

// TestDecideExpired: an approval that expired before anyone decided it
// answers 409 approval_expired and stays expired.
func TestDecideExpired(t *testing.T) {
	f := newFixture(t, approvalapi.Config{}, time.Minute)
	then := time.Now().Add(-2 * time.Hour)
	b := approval.Binding{AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "send:mail", Resource: "/mail/old"}
	digest, err := b.Digest()
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := f.db.RequestApproval(context.Background(), approval.Approval{
		ID: approval.NewID(then), Binding: digest, AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "send:mail",
		Resource: "/mail/old", CreatedAt: then, ExpiresAt: then.Add(time.Hour),
	}, then)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", f.base+"/admin/approvals/"+a.ID+"/approve", strings.NewReader(`{"by":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(api.HeaderAdminToken, adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body api.ApprovalConflict
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 409 || body.Error != api.ErrorApprovalExpired || body.Status != "expired" {
		t.Fatalf("%d %+v %v", res.StatusCode, body, err)
	}
	if got, err := f.db.GetApproval(context.Background(), a.ID); err != nil || got.Status != approval.Expired || got.DecidedBy != "" {
		t.Fatalf("after: %+v %v", got, err)
	}
}
