package console_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPoliciesPage: the set in force, each policy with its mode, whom it
// applies to, its rules and where it was read; a failed reload's errors
// shown above the set that stayed in force.
func TestPoliciesPage(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	rev := fx.f.Policies.Current().Revision()
	resp, body := fx.get(t, c, "/ui/policies")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s", resp.Status)
	}
	for _, want := range []string{
		`<code id="revision">` + rev + `</code>`,
		"<td><code>readers</code></td><td>enforce</td><td>tags reader</td>",
		`<li><code>no-secrets</code> <span class="badge deny">deny</span> <code>read:secrets/*</code></li>`,
		`<li><code>reads</code> <span class="badge allow">allow</span> <code>read:*</code></li>`,
		"policies.yaml:1</code>",
		`aria-current="page">Policies`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the policies page lacks %q", want)
		}
	}
	if strings.Contains(body, "load-errors") {
		t.Error("load errors shown after a clean load")
	}

	// A broken file: the reload fails, the old set stays and the page
	// says why, with the file and line.
	pfile := filepath.Join(fx.f.Dir, "policies.yaml")
	if err := os.WriteFile(pfile, []byte(testPolicies+"---\nname: broken\nrules:\n  - {name: x, effect: maybe, actions: [\"a:b\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.f.Policies.Reload(context.Background()); err == nil {
		t.Fatal("the broken file loaded")
	}
	_, body = fx.get(t, c, "/ui/policies")
	for _, want := range []string{`id="load-errors"`, "The last reload failed", "policies.yaml:9: rules[0].effect", `<code id="revision">` + rev + `</code>`} {
		if !strings.Contains(body, want) {
			t.Errorf("after a failed reload the page lacks %q", want)
		}
	}
}

// draftPolicy allows writes to tagged writers, and one send only to an
// internal recipient (a context condition).
const draftPolicy = `name: writers
appliesTo: {tags: [writer]}
rules:
  - name: internal-mail
    effect: allow
    actions: ["send:mail"]
    conditions:
      context: {recipient: {matches: "*@corp.example"}}
  - {name: writes, effect: allow, actions: ["write:*"]}
`

// TestPlayground: the form decides by the live set or a draft, with the
// explanation; a form it cannot decide gets a specific error and the
// answer keeps what was typed.
func TestPlayground(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	csrf := fx.csrfOf(t, c)
	rev := fx.f.Policies.Current().Revision()
	base := func(kv ...string) url.Values {
		v := url.Values{"csrf": {csrf}, "source": {"live"}, "agent": {"play-1"}, "tier": {"verified"}, "tags": {"reader"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name      string
		form      url.Values
		status    int
		want, not []string
	}{
		{"live, allowed", base("action", "read:docs"), 200,
			[]string{`id="play-effect">allow</span> <code>rule_allow</code> by <code>readers</code> / <code>reads</code>`,
				"<strong>readers</strong>: covers the agent", "<code>no-secrets</code>: "}, nil},
		{"live, denied", base("action", "read:secrets/key"), 200,
			[]string{`id="play-effect">deny</span> <code>rule_deny</code> by <code>readers</code> / <code>no-secrets</code>`}, nil},
		{"live, not covered", base("action", "read:docs", "tags", "writer"), 200,
			[]string{`id="play-effect">deny</span> <code>no_policy</code>`, "<strong>readers</strong>: does not cover the agent"}, nil},
		{"draft, allowed", base("source", "draft", "draft", draftPolicy, "tags", "writer", "action", "write:docs"), 200,
			[]string{`id="play-effect">allow</span> <code>rule_allow</code> by <code>writers</code> / <code>writes</code>`}, []string{"<strong>readers</strong>"}},
		{"draft, context holds", base("source", "draft", "draft", draftPolicy, "tags", "writer", "action", "send:mail", "context", `{"recipient":"a@corp.example"}`), 200,
			[]string{`by <code>writers</code> / <code>internal-mail</code>`, `id="play-effect">allow`}, nil},
		{"draft, context fails", base("source", "draft", "draft", draftPolicy, "tags", "writer", "action", "send:mail", "context", `{"recipient":"a@evil.example"}`), 200,
			[]string{`id="play-effect">deny</span> <code>no_matching_rule</code>`}, nil},
		{"draft, a shadow policy decides as if enforcing", base("source", "draft", "draft", "name: trial\nmode: shadow\nappliesTo: {tags: [writer]}\nrules: [{name: w, effect: allow, actions: [\"write:*\"]}]\n", "tags", "writer", "action", "write:docs"), 200,
			[]string{`id="play-effect">allow</span> <code>rule_allow</code> by <code>trial</code> / <code>w</code>`}, nil},
		{"draft that does not load", base("source", "draft", "draft", "name: x\nrules: [{name: r, effect: maybe, actions: [\"a:b\"]}]\n", "action", "a:b"), 400,
			[]string{"the draft does not load:", "draft.yaml:2: rules[0].effect"}, []string{"play-effect"}},
		{"empty draft", base("source", "draft", "action", "a:b"), 400, []string{"draft: empty"}, nil},
		{"no agent", base("agent", "", "action", "read:docs"), 400, []string{"agent: required"}, nil},
		{"no action", base(), 400, []string{"action: required"}, nil},
		{"action without a verb", base("action", "docs"), 400, []string{"expected verb:resource"}, nil},
		{"unknown tier", base("tier", "godlike", "action", "read:docs"), 400, []string{"tier: unknown trust tier"}, nil},
		{"context not an object", base("action", "read:docs", "context", "[1]"), 400, []string{"context: expected a JSON object"}, nil},
		{"context with trailing data", base("action", "read:docs", "context", "{} {}"), 400, []string{"context: expected a JSON object"}, nil},
		{"unknown source", base("source", "yesterday", "action", "read:docs"), 400, []string{"source: expected live or draft"}, nil},
		{"control character", base("action", "read:do\x01cs"), 400, []string{"action: "}, []string{"play-effect"}},
		{"the form is kept", base("action", "docs", "resource", "<b>kept</b>"), 400, []string{`value="&lt;b&gt;kept&lt;/b&gt;"`}, []string{"<b>kept</b>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := fx.post(t, c, "/ui/policies/playground", tc.form, fx.srv.URL)
			var b strings.Builder
			buf := make([]byte, 32<<10)
			for {
				n, err := resp.Body.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			body := b.String()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d", resp.Status, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("the answer lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, n) {
					t.Errorf("the answer shows %q", n)
				}
			}
		})
	}
	// A draft changes nothing in force.
	if got := fx.f.Policies.Current(); got.Revision() != rev || len(got.Policies()) != 1 {
		t.Error("the set in force changed")
	}
	// Without the CSRF token the playground answers nothing.
	form := base("action", "read:docs")
	form.Del("csrf")
	if resp := fx.post(t, c, "/ui/policies/playground", form, fx.srv.URL); resp.StatusCode != http.StatusForbidden {
		t.Errorf("without CSRF: %s", resp.Status)
	}
}
