package approvallink

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/store"
)

// clock is the handler's test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// decider records the source each decision came with and decides in the
// real store.
type decider struct {
	s       *store.SQLite
	mu      sync.Mutex
	sources []string
}

func (d *decider) Decide(ctx context.Context, dec approval.Decision, source string) (approval.Approval, error) {
	d.mu.Lock()
	d.sources = append(d.sources, source)
	d.mu.Unlock()
	return d.s.DecideApproval(ctx, dec)
}

type rig struct {
	s      *store.SQLite
	signer *Signer
	srv    *httptest.Server
	dec    *decider
	clock  *clock
}

// newRig serves the link pages on a real HTTP server over a real SQLite
// store, with rpm link requests a minute per address.
func newRig(t *testing.T, rpm int) *rig {
	t.Helper()
	s, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "mg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	r := &rig{s: s, signer: mustSigner(t), dec: &decider{s: s}, clock: &clock{t: time.Now()}}
	h, err := New(Config{Signer: r.signer, Approvals: s, Decider: r.dec, Limiter: ratelimit.NewMemory(nil, 0), RPM: rpm, Now: r.clock.now,
		Names: func(_ context.Context, ids []string) []string { return []string{"planner", "mailer"} }})
	if err != nil {
		t.Fatal(err)
	}
	router := httpjson.NewRouter(nil)
	h.Register(router)
	r.srv = httptest.NewServer(router)
	t.Cleanup(r.srv.Close)
	return r
}

// raise stores a pending approval, as the engine raises one.
func (r *rig) raise(t *testing.T, resource string) approval.Approval {
	t.Helper()
	now := time.Now()
	a := approval.Approval{ID: approval.NewID(now), AgentID: "agent_mailer", AgentName: "mailer", Chain: []string{"agent_planner", "agent_mailer"},
		Action: "call:mail/send_email", Resource: resource, Policy: "mailers", Rule: "outsiders",
		Arguments: json.RawMessage(`{"password":"[redacted]","to":"<eve@outside.example>"}`), TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	b, err := approval.Binding{AgentID: a.AgentID, Chain: a.Chain, Action: a.Action, Resource: resource}.Digest()
	if err != nil {
		t.Fatal(err)
	}
	a.Binding = b
	got, outcome, err := r.s.RequestApproval(t.Context(), a, now)
	if err != nil || outcome != approval.OutcomeRequested {
		t.Fatalf("raising: %v, %v", outcome, err)
	}
	return got
}

// url turns a link (under https://mg.example.com) into one on the rig.
func (r *rig) url(link string) string {
	return strings.Replace(link, "https://mg.example.com", r.srv.URL, 1)
}

type answer struct {
	status int
	body   string
	hdr    http.Header
}

func (r *rig) do(t *testing.T, method, link string, form url.Values) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, r.url(link), body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, string(b), res.Header}
}

func (r *rig) status(t *testing.T, id string) approval.Status {
	t.Helper()
	a, err := r.s.GetApproval(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Status
}

// TestLinkFlow: a GET shows the request, escaped, with a form and decides
// nothing; the POST approves as link:<channel> with its reason; then both
// links answer 409 naming who decided, and nothing changes again.
func TestLinkFlow(t *testing.T) {
	r := newRig(t, 1000)
	a := r.raise(t, "mcp://mail/tools/send_email")
	approve := r.signer.Link(a.ID, Approve, "slack", a.ExpiresAt)
	deny := r.signer.Link(a.ID, Deny, "slack", a.ExpiresAt)

	for range 2 { // an unfurler and a mail scanner
		got := r.do(t, "GET", approve, nil)
		if got.status != 200 || !strings.Contains(got.body, `<form method="post">`) || !strings.Contains(got.body, "planner → mailer") ||
			!strings.Contains(got.body, "call:mail/send_email") || !strings.Contains(got.body, "&lt;eve@outside.example&gt;") || strings.Contains(got.body, "<eve@") {
			t.Fatalf("GET: %d\n%s", got.status, got.body)
		}
		for k, v := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
			"Content-Type": "text/html; charset=utf-8"} {
			if got.hdr.Get(k) != v {
				t.Errorf("%s: %q, want %q", k, got.hdr.Get(k), v)
			}
		}
		if csp := got.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("CSP %q", csp)
		}
		if got.hdr.Get("Set-Cookie") != "" || strings.Contains(got.body, "<script") {
			t.Error("a cookie or a script")
		}
	}
	if st := r.status(t, a.ID); st != approval.Pending {
		t.Fatalf("after GETs the approval is %s: a GET decided", st)
	}

	got := r.do(t, "POST", approve, url.Values{"reason": {"known customer"}})
	if got.status != 200 || !strings.Contains(got.body, "Approved") {
		t.Fatalf("POST: %d\n%s", got.status, got.body)
	}
	now, _ := r.s.GetApproval(t.Context(), a.ID)
	if now.Status != approval.Approved || now.DecidedBy != "link:slack" || now.DecisionReason != "known customer" {
		t.Fatalf("after the POST: %+v", now)
	}
	if len(r.dec.sources) != 1 || r.dec.sources[0] != "link" {
		t.Fatalf("decided with sources %v", r.dec.sources)
	}
	for _, tc := range []struct{ method, link string }{{"POST", approve}, {"POST", deny}, {"GET", deny}} {
		got := r.do(t, tc.method, tc.link, url.Values{})
		if got.status != 409 || !strings.Contains(got.body, "already approved by link:slack") {
			t.Fatalf("%s %s again: %d\n%s", tc.method, tc.link, got.status, got.body)
		}
	}
	if st := r.status(t, a.ID); st != approval.Approved || len(r.dec.sources) != 1 {
		t.Fatalf("a used link changed something: %s, %d decisions", st, len(r.dec.sources))
	}
}

// TestLinkRefusals: tampered links are 403 with one page, whether the
// approval exists or not, and change nothing; an expired link is 410;
// an approval that expired undecided is 410; a bad reason is 400 and
// changes nothing; beyond the per-address limit, 429.
func TestLinkRefusals(t *testing.T) {
	r := newRig(t, 1000)
	a := r.raise(t, "mcp://mail/tools/send_email")
	good := r.signer.Link(a.ID, Approve, "email", a.ExpiresAt)
	forbidden := r.do(t, "GET", r.signer.Link(otherID, Approve, "email", a.ExpiresAt), nil) // signed, unknown id
	if forbidden.status != 403 {
		t.Fatalf("an unknown id: %d", forbidden.status)
	}
	tamper := func(edit func(id *string, q url.Values)) string {
		id, q := split(t, good)
		edit(&id, q)
		return "https://mg.example.com" + PathPrefix + id + "?" + q.Encode()
	}
	for _, tc := range []struct{ name, link string }{
		{"another id", tamper(func(id *string, _ url.Values) { *id = otherID })},
		{"deny for approve", tamper(func(_ *string, q url.Values) { q.Set("d", Deny) })},
		{"a later exp", tamper(func(_ *string, q url.Values) { q.Set("exp", "1999999999") })},
		{"another channel", tamper(func(_ *string, q url.Values) { q.Set("via", "slack") })},
		{"another signature", tamper(func(_ *string, q url.Values) { q.Set("sig", strings.Repeat("A", 43)) })},
		{"no signature", tamper(func(_ *string, q url.Values) { q.Del("sig") })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{"GET", "POST"} {
				got := r.do(t, method, tc.link, url.Values{})
				if got.status != 403 || got.body != forbidden.body {
					t.Fatalf("%s: %d, a page other than the unknown id's:\n%s", method, got.status, got.body)
				}
			}
		})
	}
	if st := r.status(t, a.ID); st != approval.Pending || len(r.dec.sources) != 0 {
		t.Fatalf("a tampered link changed something: %s, %v", st, r.dec.sources)
	}

	long := r.do(t, "POST", good, url.Values{"reason": {strings.Repeat("x", approval.MaxReason+1)}})
	ctrl := r.do(t, "POST", good, url.Values{"reason": {"ok\x00"}})
	// The approval API takes one line: a newline is a 400 here, not a
	// 503 "nothing was decided" from behind.
	lines := r.do(t, "POST", good, url.Values{"reason": {"two\nlines"}})
	if long.status != 400 || ctrl.status != 400 || lines.status != 400 || r.status(t, a.ID) != approval.Pending {
		t.Fatalf("bad reasons: %d, %d, %d", long.status, ctrl.status, lines.status)
	}

	// The link's own expiry: 410 before anything is read.
	short := r.signer.Link(a.ID, Approve, "email", r.clock.now().Add(time.Minute))
	r.clock.mu.Lock()
	r.clock.t = r.clock.t.Add(2 * time.Minute)
	r.clock.mu.Unlock()
	if got := r.do(t, "POST", short, url.Values{}); got.status != 410 || r.status(t, a.ID) != approval.Pending {
		t.Fatalf("an expired link: %d", got.status)
	}

	limited := newRig(t, 2)
	b := limited.raise(t, "mcp://mail/tools/x")
	link := limited.signer.Link(b.ID, Deny, "webhook", b.ExpiresAt)
	for i := range 2 {
		if got := limited.do(t, "GET", link, nil); got.status != 200 {
			t.Fatalf("request %d: %d", i, got.status)
		}
	}
	if got := limited.do(t, "POST", link, url.Values{}); got.status != 429 || got.hdr.Get("Retry-After") == "" || limited.status(t, b.ID) != approval.Pending {
		t.Fatalf("beyond the limit: %d %v", got.status, got.hdr)
	}
}

// TestLinkExpiredApproval: an approval past its expiry answers 410 to its
// (still unexpired) link and cannot be decided.
func TestLinkExpiredApproval(t *testing.T) {
	r := newRig(t, 1000)
	now := time.Now()
	a := approval.Approval{ID: approval.NewID(now), AgentID: "agent_a", Chain: []string{"agent_a"}, Action: "read:x", Policy: "p", Rule: "r",
		CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	a.Binding, _ = approval.Binding{AgentID: "agent_a", Chain: a.Chain, Action: a.Action}.Digest()
	if _, _, err := r.s.RequestApproval(t.Context(), a, a.CreatedAt); err != nil {
		t.Fatal(err)
	}
	link := r.signer.Link(a.ID, Approve, "slack", now.Add(time.Hour)) // a link that outlives its approval
	if got := r.do(t, "POST", link, url.Values{}); got.status != 410 || len(r.dec.sources) != 0 {
		t.Fatalf("an expired approval: %d, decided %v", got.status, r.dec.sources)
	}
}
