package console_test

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/meshguard/meshguard/console"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// syncBuffer is a log sink the handlers may write from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	csrfPattern  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	tokenPattern = regexp.MustCompile(`(?s)<textarea id="token-value"[^>]*>([^<]+)</textarea>`)
)

// csrfOf reads the CSRF token from a page of c's session.
func (fx *fixture) csrfOf(t *testing.T, c *http.Client) string {
	t.Helper()
	_, body := fx.get(t, c, "/ui/agents")
	m := csrfPattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the agents page")
	}
	return m[1]
}

// postForm posts a form of the console with c's CSRF token, from its origin.
func (fx *fixture) postForm(t *testing.T, c *http.Client, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	form.Set("csrf", fx.csrfOf(t, c))
	resp := fx.post(t, c, path, form, fx.srv.URL)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// shownToken is the token a page shows, "" if none.
func shownToken(body string) string {
	if m := tokenPattern.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(strings.TrimSpace(m[1]))
	}
	return ""
}

// verifies reports whether tok is accepted as an agent token now.
func (fx *fixture) verifies(tok string) bool {
	_, err := fx.f.Cached.Verify(context.Background(), tok)
	return err == nil
}

// TestAgentsCreateShowsTokenOnce: creating an agent stores it as asked
// and shows a working token on that answer only: not on the list, the
// agent's page or in any log line.
func TestAgentsCreateShowsTokenOnce(t *testing.T) {
	var logs syncBuffer
	fx := newFixture(t, func(cfg *console.Config) { cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	c := fx.client(t)
	fx.signIn(t, c)
	resp, body := fx.postForm(t, c, "/ui/agents", url.Values{"name": {"summariser"}, "tier": {"trusted"},
		"tags": {"reader, team-a ,"}, "hosts": {"docs.internal"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create: %s\n%s", resp.Status, body)
	}
	tok := shownToken(body)
	if tok == "" || !fx.verifies(tok) {
		t.Fatalf("the page shows no working token (%q)", tok)
	}
	ag, err := fx.f.Store.GetAgentByName(context.Background(), "summariser")
	if err != nil {
		t.Fatal(err)
	}
	if ag.TrustTier != trust.Trusted || strings.Join(ag.Tags, ",") != "reader,team-a" || strings.Join(ag.Hosts, ",") != "docs.internal" || !ag.Active() {
		t.Fatalf("stored %+v", ag)
	}
	for _, path := range []string{"/ui/agents", "/ui/agents/" + ag.ID, "/ui/agents/summariser"} {
		resp, page := fx.get(t, c, path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, ag.ID) {
			t.Fatalf("%s: %s, want the agent listed", path, resp.Status)
		}
		if strings.Contains(page, tok) || shownToken(page) != "" {
			t.Fatalf("%s shows the token again", path)
		}
	}
	if !strings.Contains(logs.String(), "agent created") {
		t.Fatalf("the admin API's log line is missing: %s", logs.String())
	}
	if strings.Contains(logs.String(), tok) {
		t.Fatal("the token is in the log")
	}
}

// TestAgentsLastSeen: an agent is "last seen" at its newest audit record;
// one never seen says so.
func TestAgentsLastSeen(t *testing.T) {
	fx := newFixture(t, nil)
	id := fx.check(t, "/docs/a")
	rec, _, err := fx.f.Store.AuditRecord(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	fx.f.Agent(t, "idle", trust.Untrusted, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	_, page := fx.get(t, c, "/ui/agents")
	row := func(name string) string {
		m := regexp.MustCompile(`<tr data-id="[^"]+" class="[a-z]+"><td><a href="[^"]+">` + name + `</a>.*?</tr>`).FindString(page)
		if m == "" {
			t.Fatalf("no row for %s in\n%s", name, page)
		}
		return m
	}
	if want := rec.Timestamp.UTC().Format("2006-01-02 15:04:05"); !strings.Contains(row("reader-1"), want) {
		t.Fatalf("reader-1's row %s, want last seen %s", row("reader-1"), want)
	}
	if !strings.Contains(row("idle"), "never") {
		t.Fatalf("idle's row %s, want never", row("idle"))
	}
}

// TestAgentsRefusals: what the admin API refuses, the console refuses
// with its message, and nothing is stored.
func TestAgentsRefusals(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	reader, err := fx.f.Store.GetAgentByName(context.Background(), "reader-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		message    string
	}{
		{"an unknown tier", "/ui/agents", url.Values{"name": {"x1"}, "tier": {"godlike"}}, http.StatusBadRequest, "unknown trust tier"},
		{"a taken name", "/ui/agents", url.Values{"name": {"reader-1"}, "tier": {"untrusted"}}, http.StatusConflict, "reader-1"},
		{"no name", "/ui/agents", url.Values{"tier": {"untrusted"}}, http.StatusBadRequest, "name"},
		{"a name like an id", "/ui/agents", url.Values{"name": {"agent_x"}, "tier": {"untrusted"}}, http.StatusBadRequest, "agent_"},
		{"edit: an unknown tier", "/ui/agents/" + reader.ID, url.Values{"tier": {"godlike"}, "tags": {"reader"}}, http.StatusBadRequest, "unknown trust tier"},
		{"edit: no such agent", "/ui/agents/agent_nope", url.Values{"tier": {"trusted"}}, http.StatusNotFound, "no agent"},
		{"revoke: no such agent", "/ui/agents/nobody/revoke", url.Values{}, http.StatusNotFound, "no agent"},
		{"new token: no such agent", "/ui/agents/nobody/token", url.Values{}, http.StatusNotFound, "no agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := fx.f.Store.ListAgents(context.Background(), store.AgentFilter{})
			if err != nil {
				t.Fatal(err)
			}
			resp, body := fx.postForm(t, c, tc.path, tc.form)
			if resp.StatusCode != tc.status || !strings.Contains(html.UnescapeString(body), tc.message) {
				t.Fatalf("%s, want %d saying %q:\n%s", resp.Status, tc.status, tc.message, body)
			}
			if shownToken(body) != "" {
				t.Fatal("a refusal shows a token")
			}
			after, err := fx.f.Store.ListAgents(context.Background(), store.AgentFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("%d agents, was %d", len(after), len(before))
			}
			for i := range after {
				if after[i].TrustTier != before[i].TrustTier || strings.Join(after[i].Tags, ",") != strings.Join(before[i].Tags, ",") || after[i].Status != before[i].Status {
					t.Fatalf("agent %s changed: %+v, was %+v", after[i].Name, after[i], before[i])
				}
			}
		})
	}
}

// TestAgentsEditRotateRevoke: an edit changes the tier, tags and hosts; a
// new token works and is shown once; revoking stops every token, and a
// revoked agent is neither edited nor given a token.
func TestAgentsEditRotateRevoke(t *testing.T) {
	fx := newFixture(t, nil)
	ag, first := fx.f.Agent(t, "worker", trust.Untrusted, []string{"old"})
	c := fx.client(t)
	fx.signIn(t, c)

	resp, body := fx.postForm(t, c, "/ui/agents/"+ag.ID, url.Values{"tier": {"verified"}, "tags": {"new, other"}, "hosts": {"a.internal"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/agents/"+ag.ID {
		t.Fatalf("edit: %s %s\n%s", resp.Status, resp.Header.Get("Location"), body)
	}
	got, err := fx.f.Store.GetAgent(context.Background(), ag.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.TrustTier != trust.Verified || strings.Join(got.Tags, ",") != "new,other" || strings.Join(got.Hosts, ",") != "a.internal" {
		t.Fatalf("after the edit: %+v", got)
	}

	resp, body = fx.postForm(t, c, "/ui/agents/"+ag.ID+"/token", url.Values{})
	second := shownToken(body)
	if resp.StatusCode != http.StatusOK || second == "" || second == first || !fx.verifies(second) {
		t.Fatalf("new token: %s, token %q", resp.Status, second)
	}
	if _, page := fx.get(t, c, "/ui/agents/"+ag.ID); strings.Contains(page, second) {
		t.Fatal("the agent's page shows the new token again")
	}

	resp, body = fx.postForm(t, c, "/ui/agents/"+ag.ID+"/revoke", url.Values{})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %s\n%s", resp.Status, body)
	}
	got, err = fx.f.Store.GetAgent(context.Background(), ag.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != identity.StatusRevoked {
		t.Fatalf("status %s after revoking", got.Status)
	}
	for _, tok := range []string{first, second} {
		if fx.verifies(tok) {
			t.Fatal("a token of the revoked agent still verifies")
		}
	}
	if _, page := fx.get(t, c, "/ui/agents/"+ag.ID); !strings.Contains(page, ">revoked<") || strings.Contains(page, `id="a-revoke"`) {
		t.Fatal("the revoked agent's page does not say so, or still offers to revoke")
	}
	for _, tc := range []struct{ name, path string }{{"edit", "/ui/agents/" + ag.ID}, {"new token", "/ui/agents/" + ag.ID + "/token"}} {
		resp, body := fx.postForm(t, c, tc.path, url.Values{"tier": {"privileged"}})
		if resp.StatusCode != http.StatusConflict || shownToken(body) != "" {
			t.Fatalf("%s of a revoked agent: %s, want 409 and no token", tc.name, resp.Status)
		}
	}
}

// TestAgentsFormsNeedCSRF: the agents forms take the session's CSRF token
// (the check every console POST gets): without it nothing is created.
func TestAgentsFormsNeedCSRF(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	resp := fx.post(t, c, "/ui/agents", url.Values{"name": {"sneaky"}, "tier": {"privileged"}}, fx.srv.URL)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("create without CSRF: %s, want 403", resp.Status)
	}
	if _, err := fx.f.Store.GetAgentByName(context.Background(), "sneaky"); err == nil {
		t.Fatal("an agent was created without the CSRF token")
	}
}

// TestAgentsQuery: the list takes only after.
func TestAgentsQuery(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	for _, tc := range []struct {
		query string
		want  int
	}{{"", http.StatusOK}, {"?after=a", http.StatusOK}, {"?tier=x", http.StatusBadRequest}, {"?after=a&after=b", http.StatusBadRequest}} {
		if resp, _ := fx.get(t, c, "/ui/agents"+tc.query); resp.StatusCode != tc.want {
			t.Errorf("/ui/agents%s: %s, want %d", tc.query, resp.Status, tc.want)
		}
	}
}
