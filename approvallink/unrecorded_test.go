package approvallink

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/store"
	"net/http/httptest"
)

// serviceDecider is server's linkDecider: the approval API's own Decide.
type serviceDecider struct{ svc *approvalapi.Service }

func (d serviceDecider) Decide(ctx context.Context, dec approval.Decision, source string) (approval.Approval, error) {
	return d.svc.Decide(ctx, dec, approvalapi.Source(source))
}

// TestLinkDecidedButUnrecorded: when the decision is stored but its audit
// record cannot be written (the audit trail's store is gone), the page
// must not tell the approver "Nothing was decided": the approval is
// approved, and the agent's retry will be allowed.
func TestLinkDecidedButUnrecorded(t *testing.T) {
	r := newRig(t, 1000)
	// A real audit writer over its own store, closed: every Write fails.
	as, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	w, err := audit.NewWriter(t.Context(), as, audit.WriterConfig{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	svc, err := approvalapi.New(t.Context(), approvalapi.Config{Store: r.s, Recorder: w})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Signer: r.signer, Approvals: r.s, Decider: serviceDecider{svc}, Limiter: ratelimit.NewMemory(nil, 0), Now: r.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	router := httpjson.NewRouter(nil)
	h.Register(router)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	r.srv = srv

	a := r.raise(t, "mcp://mail/tools/send_email")
	got := r.do(t, "POST", r.signer.Link(a.ID, Approve, "email", a.ExpiresAt), url.Values{"reason": {"ok"}})
	if st := r.status(t, a.ID); st != approval.Approved {
		t.Fatalf("the approval is %s, want approved (the store decided)", st)
	}
	if got.status != 500 || strings.Contains(got.body, "Nothing was decided") || !strings.Contains(got.body, "approved") ||
		!strings.Contains(got.body, "audit record") {
		t.Fatalf("POST: %d\n%s", got.status, got.body)
	}
}
