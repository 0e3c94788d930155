package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/console"
)

// TestSecurityHeaders: every answer of every route — pages, refusals,
// static files — carries the strict CSP and the other headers, and no
// page holds inline script or style (which the CSP would block anyway).
func TestSecurityHeaders(t *testing.T) {
	fx := newFixture(t, nil)
	id := fx.check(t, "/secrets/key")
	signedIn := fx.client(t)
	fx.signIn(t, signedIn)
	// Inline style and handlers, and any script but an empty one with src.
	inline := regexp.MustCompile(`(?i)<style|\sstyle=|\son[a-z]+=|javascript:`)
	scripts := regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`)
	for _, tc := range []struct {
		name, path string
		client     *http.Client
	}{
		{"sign-in", "/ui/login", fx.client(t)},
		{"redirect to sign in", "/ui/decisions", fx.client(t)},
		{"stylesheet", "/ui/static/console.css", fx.client(t)},
		{"script", "/ui/static/decisions.js", fx.client(t)},
		{"missing static file", "/ui/static/nope.js", fx.client(t)},
		{"decisions", "/ui/decisions", signedIn},
		{"agents", "/ui/agents", signedIn},
		{"an agent", "/ui/agents/reader-1", signedIn},
		{"decisions, bad filter", "/ui/decisions?decision=maybe", signedIn},
		{"approvals", "/ui/approvals", signedIn},
		{"approvals, bad filter", "/ui/approvals?status=maybe", signedIn},
		{"a decision", "/ui/decisions/" + id, signedIn},
		{"no such decision", "/ui/decisions/aud_nope", signedIn},
		{"a chain", "/ui/traces/" + traceID, signedIn},
		{"policies", "/ui/policies", signedIn},
		{"overview", "/ui/overview", signedIn},
		{"a bad trace id", "/ui/traces/XYZ", signedIn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := fx.get(t, tc.client, tc.path)
			h := resp.Header
			for k, want := range map[string]string{
				"Content-Security-Policy": console.ContentSecurityPolicy, "X-Content-Type-Options": "nosniff",
				"Referrer-Policy": "same-origin", "Cache-Control": "no-store", "X-Frame-Options": "DENY",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if !strings.Contains(console.ContentSecurityPolicy, "script-src 'self';") || strings.Contains(console.ContentSecurityPolicy, "unsafe") {
				t.Fatalf("the CSP is not strict: %s", console.ContentSecurityPolicy)
			}
			if strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				if m := inline.FindString(body); m != "" {
					t.Errorf("inline style or handler in the page: %q", m)
				}
				if strings.Count(strings.ToLower(body), "<script") != len(scripts.FindAllString(body, -1)) {
					t.Error("a script tag the check cannot read")
				}
				for _, m := range scripts.FindAllStringSubmatch(body, -1) {
					if !strings.Contains(m[1], `src="/ui/static/`) || strings.TrimSpace(m[2]) != "" {
						t.Errorf("an inline script: %q", m[0])
					}
				}
				if resp.StatusCode != http.StatusSeeOther && !strings.Contains(body, `<html lang="en">`) {
					t.Error("the page has no lang attribute")
				}
			}
		})
	}
}

// TestDecisionsPage: the filters apply to the rows, server-side, and a
// refused filter says which.
func TestDecisionsPage(t *testing.T) {
	fx := newFixture(t, nil)
	allowed, denied := fx.check(t, "/docs/a"), fx.check(t, "/secrets/key")
	c := fx.client(t)
	fx.signIn(t, c)
	for _, tc := range []struct {
		name, query string
		status      int
		want, not   []string
	}{
		{"all", "", 200, []string{allowed, denied}, nil},
		{"denied", "?decision=deny", 200, []string{denied}, []string{allowed}},
		{"by reason", "?reason=rule_allow", 200, []string{allowed}, []string{denied}},
		{"by action prefix", "?action=read:secrets*", 200, []string{denied}, []string{allowed}},
		{"by agent name", "?agent=reader-1&decision=allow", 200, []string{allowed}, []string{denied}},
		{"another agent", "?agent=nobody", 200, nil, []string{allowed, denied}},
		{"by protocol: none here", "?protocol=mcp", 200, nil, []string{allowed, denied}},
		{"from the future", "?from=2999-01-01T00:00", 200, nil, []string{allowed, denied}},
		{"bad decision", "?decision=maybe", 400, []string{"decision: expected allow or deny"}, []string{allowed}},
		{"unknown parameter", "?colour=red", 400, []string{"unknown query parameter"}, []string{allowed}},
		{"repeated parameter", "?agent=a&agent=b", 400, []string{"more than once"}, nil},
		{"bad time", "?to=yesterday", 400, []string{"to: expected a time"}, nil},
		{"control character", "?reason=a%00b", 400, []string{"control character"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := fx.get(t, c, "/ui/decisions"+tc.query)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d", resp.Status, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, n) {
					t.Errorf("page shows %q", n)
				}
			}
		})
	}
}

// TestDecisionPage: a decision with its policy and rule, the explanation
// of deciding it again, its chain and the tracing link (escaped).
func TestDecisionPage(t *testing.T) {
	fx := newFixture(t, func(cfg *console.Config) { cfg.TraceURL = "http://jaeger.test:16686/trace/{traceId}" })
	id := fx.check(t, "/secrets/key")
	c := fx.client(t)
	fx.signIn(t, c)
	resp, body := fx.get(t, c, "/ui/decisions/"+id)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s", resp.Status)
	}
	for _, want := range []string{
		"<code>readers</code> / <code>no-secrets</code>", // the recorded policy and rule
		"Decided again by the policies in force",
		"<code>no-secrets</code>: ", // the explanation's rule line
		`href="/ui/traces/` + traceID + `"`,
		`href="http://jaeger.test:16686/trace/` + traceID + `"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the decision page lacks %q", want)
		}
	}
	if r, _ := fx.get(t, c, "/ui/decisions/aud_no-such"); r.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown id: %s", r.Status)
	}
}

// TestDecisionPageWithoutRule: a denial by a policy's default names the
// policy and says there is no rule, rather than showing an empty rule.
func TestDecisionPageWithoutRule(t *testing.T) {
	fx := newFixture(t, nil)
	id := fx.checkMethod(t, "POST", "/docs/a") // write:docs/a: no rule matches
	c := fx.client(t)
	fx.signIn(t, c)
	resp, body := fx.get(t, c, "/ui/decisions/"+id)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s", resp.Status)
	}
	if want := "<code>readers</code> (no rule: its default or its delegation checks)"; !strings.Contains(body, want) {
		t.Errorf("the decision page lacks %q", want)
	}
	if strings.Contains(body, "</code> / <code></code>") {
		t.Error("a denial without a rule is shown with an empty rule")
	}
}

// TestChainPage: the delegation tree of a trace, the denied hop marked
// with why — by a rule, or by a policy's default (no rule to name).
func TestChainPage(t *testing.T) {
	fx := newFixture(t, nil)
	allowed, denied := fx.check(t, "/docs/a"), fx.check(t, "/secrets/key")
	fx.checkMethod(t, "POST", "/docs/a") // write:docs/a: no rule matches
	c := fx.client(t)
	fx.signIn(t, c)
	_, body := fx.get(t, c, "/ui/traces/"+traceID)
	for _, want := range []string{
		`class="agent has-deny"`, "reader-1",
		`<li class="decision deny"><a href="/ui/decisions/` + denied + `">`,
		"denied: <code>rule_deny</code> by <code>readers</code> / <code>no-secrets</code>",
		"denied: <code>no_matching_rule</code> by <code>readers</code> (no rule: its default or its delegation checks)",
		`<li class="decision allow"><a href="/ui/decisions/` + allowed + `">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the chain page lacks %q", want)
		}
	}
	if strings.Contains(body, "</code> / <code></code>") {
		t.Error("a denial without a rule is shown with an empty rule")
	}
	if r, _ := fx.get(t, c, "/ui/traces/0123456789abcdef0123456789abcdef"); r.StatusCode != http.StatusNotFound {
		t.Errorf("a trace with no records: %s", r.Status)
	}
}

// TestStream: the live stream sends the decisions written after the
// page's cursor, filtered server-side, as server-sent events.
func TestStream(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	_, page := fx.get(t, c, "/ui/decisions?reason=rule_deny")
	m := regexp.MustCompile(`data-stream="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no stream URL on the page")
	}
	streamURL := strings.ReplaceAll(m[1], "&amp;", "&")
	allowed, denied := fx.check(t, "/docs/b"), fx.check(t, "/secrets/b")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fx.srv.URL+streamURL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("%s %s", resp.Status, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var row struct{ ID, Decision string }
		if err := json.Unmarshal([]byte(data), &row); err != nil {
			t.Fatal(err)
		}
		if row.ID == allowed {
			t.Fatal("the stream of denials sent an allow")
		}
		if row.ID == denied {
			return // the denial written after the page, and the allow before it filtered out
		}
	}
	t.Fatalf("the stream ended without the denial: %v", sc.Err())
}
