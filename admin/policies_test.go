package admin_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

// supportYAML is applied through the API: two documents, with comments
// that must survive storage.
const supportYAML = `# Support desk policies, applied through the API.
name: support
version: "1.0"
description: What support agents may do
appliesTo: {tags: [support]}
rules:
  # External mail needs a privileged agent.
  - name: no-external-email
    effect: deny
    actions: ["write:email"]
    conditions:
      context: {recipient: {not_matches: "*@example.com"}}
  - {name: reads, effect: allow, actions: ["read:*", "write:email"]}
---
# Tickets.
name: tickets
appliesTo: {tags: [support]}
rules:
  - {name: tickets, effect: allow, actions: ["write:tickets/*"]}
`

func policyNames(l api.PolicyList) []string {
	var out []string
	for _, p := range l.Policies {
		out = append(out, p.Name+"/"+p.Source)
	}
	return out
}

func TestPolicyRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	desk := e.agent(t, "desk", trust.Verified, "support")

	// Validate: valid, nothing stored.
	val, err := e.c.ValidatePolicies(ctx, api.PolicyFile{Name: "support.yaml", YAML: supportYAML})
	if err != nil || !val.Valid || len(val.Errors) != 0 || len(val.Policies) != 2 || val.Policies[0].Name != "support" || val.Policies[0].Rules != 2 {
		t.Fatalf("ValidatePolicies = %+v, %v", val, err)
	}
	if list, _ := e.c.ListPolicies(ctx); len(list.Policies) != 3 {
		t.Fatalf("validate stored something: %v", policyNames(list))
	}
	rev0 := e.f.Policies.Current().Revision()

	// Apply the YAML as curl would.
	res, err := e.c.ApplyPolicyYAML(ctx, []byte(supportYAML))
	if err != nil || !res.InForce || len(res.Applied) != 2 || !res.Applied[0].Created || res.Applied[1].Name != "tickets" || res.Revision == rev0 {
		t.Fatalf("ApplyPolicyYAML = %+v, %v", res, err)
	}
	if got := e.f.Policies.Current().Revision(); got != res.Revision {
		t.Fatalf("revision in force %s, apply said %s", got, res.Revision)
	}
	list, err := e.c.ListPolicies(ctx)
	want := []string{"emailers/file", "orchestrators/file", "researchers/file", "support/stored", "tickets/stored"}
	if err != nil || !cmp.Equal(policyNames(list), want) || list.Revision != res.Revision || len(list.LoadErrors) != 0 {
		t.Fatalf("ListPolicies = %v (%+v), %v; want %v", policyNames(list), list, err, want)
	}
	if p := list.Policies[3]; p.File != "stored:support" || p.Version != "1.0" || p.Description != "What support agents may do" || p.Rules != 2 {
		t.Fatalf("support: %+v", p)
	}

	// Show: the JSON form, and the YAML verbatim, comments included.
	detail, err := e.c.GetPolicy(ctx, "support")
	if err != nil || !detail.InForce || detail.Source != api.SourceStored || detail.CreatedAt == nil || !strings.Contains(detail.YAML, "# External mail needs") {
		t.Fatalf("GetPolicy = %+v, %v", detail, err)
	}
	// The JSON form is itself a valid policy (JSON is YAML) and means the same.
	again, err := policy.Parse("json", detail.Policy)
	if err != nil || len(again) != 1 {
		t.Fatalf("the JSON form does not parse as a policy: %v\n%s", err, detail.Policy)
	}
	orig, _ := policy.Parse("yaml", []byte(supportYAML))
	again[0].Source, orig[0].Source = policy.SourceRef{}, policy.SourceRef{}
	for i := range orig[0].Rules {
		orig[0].Rules[i].Line, again[0].Rules[i].Line = 0, 0
	}
	if diff := cmp.Diff(orig[0], again[0]); diff != "" {
		t.Fatalf("the JSON form means something else (-yaml +json):\n%s", diff)
	}
	raw, err := e.c.GetPolicyYAML(ctx, "tickets")
	if err != nil || !strings.HasPrefix(string(raw), "---\n# Tickets.\nname: tickets") {
		t.Fatalf("GetPolicyYAML(tickets) = %q, %v", raw, err)
	}
	fileDetail, err := e.c.GetPolicy(ctx, "researchers")
	if err != nil || fileDetail.Source != api.SourceFile || fileDetail.YAML != "" || !strings.HasSuffix(fileDetail.File, "base.yaml") || fileDetail.Line == 0 {
		t.Fatalf("GetPolicy(researchers) = %+v, %v", fileDetail, err)
	}
	_, err = e.c.GetPolicyYAML(ctx, "researchers")
	apiError(t, err, http.StatusNotAcceptable)
	_, err = e.c.GetPolicy(ctx, "nope")
	apiError(t, err, http.StatusNotFound)

	// Test one case against the live agent and the set in force.
	one, err := e.c.TestPolicy(ctx, api.PolicyTestRequest{Agent: "desk", Action: "write:email", Context: map[string]any{"recipient": "eve@evil.test"}, Verbose: true})
	if err != nil || one.Allowed || one.Reason != policy.ReasonRuleDeny || one.Policy != "support" || one.Rule != "no-external-email" || one.Explain == nil || one.Agent != "desk" {
		t.Fatalf("TestPolicy(external mail) = %+v, %v", one, err)
	}
	one, err = e.c.TestPolicy(ctx, api.PolicyTestRequest{Agent: desk.ID, Action: "write:tickets/42"})
	if err != nil || !one.Allowed || one.Policy != "tickets" {
		t.Fatalf("TestPolicy(tickets) = %+v, %v", one, err)
	}
	_, err = e.c.TestPolicy(ctx, api.PolicyTestRequest{Agent: "ghost", Action: "read:x"})
	if ae := apiError(t, err, 400); !strings.Contains(ae.Message, "ghost") {
		t.Fatal(ae)
	}
	// And a tests file.
	rep, err := e.c.RunPolicyTests(ctx, `
tests:
  - {name: internal mail, agent: desk, action: "write:email", context: {recipient: a@example.com}, expect: allow}
  - {name: wrong hope, agent: desk, action: "delete:everything", expect: allow}
`, true)
	if err != nil || rep.Summary.Total != 2 || rep.Summary.Passed != 1 || rep.Results[1].Passed || rep.Results[1].Detail == nil {
		t.Fatalf("RunPolicyTests = %+v, %v", rep, err)
	}
	_, err = e.c.RunPolicyTests(ctx, "tests:\n  - {agent: ghost, action: \"read:x\", expect: allow}\n", false)
	if ae := apiError(t, err, 400); len(ae.Errors) != 1 || ae.Errors[0].Line != 2 || !strings.Contains(ae.Errors[0].Message, "no such agent") {
		t.Fatalf("unknown agent in tests: %+v", ae)
	}

	// Re-apply one: replaced, not created.
	res, err = e.c.ApplyPolicies(ctx, api.PolicyFile{Name: "tickets.yaml", YAML: "name: tickets\nappliesTo: {tags: [support]}\nrules: []\ndefaultEffect: allow\n"})
	if err != nil || len(res.Applied) != 1 || res.Applied[0].Created || !res.InForce {
		t.Fatalf("re-apply = %+v, %v", res, err)
	}

	// Delete: gone from the store and from the set in force.
	del, err := e.c.DeletePolicy(ctx, "support")
	if err != nil || del.Deleted != "support" || !del.InForce {
		t.Fatalf("DeletePolicy = %+v, %v", del, err)
	}
	if _, ok := e.f.Policies.Current().Policy("support"); ok {
		t.Fatal("deleted policy still in force")
	}
	_, err = e.c.DeletePolicy(ctx, "support")
	apiError(t, err, http.StatusNotFound)
	list, _ = e.c.ListPolicies(ctx)
	if want := []string{"emailers/file", "orchestrators/file", "researchers/file", "tickets/stored"}; !cmp.Equal(policyNames(list), want) {
		t.Fatalf("after delete: %v, want %v", policyNames(list), want)
	}
}

func TestBrokenPolicyChangesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.c.ApplyPolicyYAML(ctx, []byte(supportYAML)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files []api.PolicyFile
		want  api.LocatedError // File, Line, Field; Message is a substring
	}{
		{"bad effect", []api.PolicyFile{{Name: "a.yaml", YAML: "name: a\nrules:\n  - {name: r, effect: alow, actions: [\"read:*\"]}\n"}},
			api.LocatedError{File: "a.yaml", Line: 3, Field: "rules[0].effect", Message: "alow"}},
		{"unknown key", []api.PolicyFile{{Name: "b.yaml", YAML: "name: b\nrulez: []\n"}},
			api.LocatedError{File: "b.yaml", Line: 2, Field: "rulez", Message: "unknown"}},
		{"YAML syntax", []api.PolicyFile{{Name: "c.yaml", YAML: "name: c\nrules: [\n"}},
			api.LocatedError{File: "c.yaml", Line: 2, Message: "invalid YAML"}},
		{"duplicate in the request", []api.PolicyFile{{Name: "d1.yaml", YAML: "name: dup\n"}, {Name: "d2.yaml", YAML: "name: dup\n"}},
			api.LocatedError{File: "d2.yaml", Line: 1, Field: "name", Message: "duplicate policy name"}},
		{"second document broken", []api.PolicyFile{{Name: "e.yaml", YAML: "name: fine\n---\nname: broken\ndelegation: {maxDepth: 9}\n"}},
			api.LocatedError{File: "e.yaml", Line: 4, Field: "delegation.maxDepth", Message: "9"}},
		{"replacing a good one with a bad one", []api.PolicyFile{{Name: "s.yaml", YAML: "name: support\ndefaultEffect: maybe\n"}},
			api.LocatedError{File: "s.yaml", Line: 2, Field: "defaultEffect", Message: "maybe"}},
		{"bad timezone", []api.PolicyFile{{Name: "f.yaml", YAML: "name: f\nrules:\n  - name: r\n    effect: allow\n    actions: [\"read:*\"]\n    conditions: {time: {between: \"09:00-17:00\", timezone: Mars/Olympus}}\n"}},
			api.LocatedError{File: "f.yaml", Line: 6, Field: "rules[0].conditions.time.timezone", Message: "Mars/Olympus"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := e.c.ListPolicies(ctx)
			if err != nil {
				t.Fatal(err)
			}
			storedBefore, _ := e.f.Store.ListPolicies(ctx)
			rev := e.f.Policies.Current().Revision()

			_, err = e.c.ApplyPolicies(ctx, tc.files...)
			ae := apiError(t, err, http.StatusBadRequest)
			if client.ExitCode(err) != client.ExitUsage {
				t.Errorf("exit code %d, want %d", client.ExitCode(err), client.ExitUsage)
			}
			found := false
			for _, le := range ae.Errors {
				if le.File == tc.want.File && le.Line == tc.want.Line && le.Field == tc.want.Field && strings.Contains(le.Message, tc.want.Message) {
					found = true
				}
			}
			if !found {
				t.Fatalf("errors %+v do not include %+v", ae.Errors, tc.want)
			}
			// Nothing changed: the list, the store, the set in force.
			after, err := e.c.ListPolicies(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Fatalf("the list changed (-before +after):\n%s", diff)
			}
			storedAfter, _ := e.f.Store.ListPolicies(ctx)
			if diff := cmp.Diff(storedBefore, storedAfter); diff != "" {
				t.Fatalf("the store changed (-before +after):\n%s", diff)
			}
			if got := e.f.Policies.Current().Revision(); got != rev {
				t.Fatalf("revision in force %s, was %s", got, rev)
			}
			// Validate reports the same errors, with 200.
			val, err := e.c.ValidatePolicies(ctx, tc.files...)
			if err != nil || val.Valid || len(val.Errors) != len(ae.Errors) {
				t.Fatalf("ValidatePolicies = %+v, %v; apply said %+v", val, err, ae.Errors)
			}
		})
	}
}

func TestFilePolicyCollision(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	base := filepath.Join(e.dir, "base.yaml")

	_, err := e.c.ApplyPolicies(ctx, api.PolicyFile{Name: "mine.yaml", YAML: "name: ok\n---\nname: researchers\nrules: []\n"})
	ae := apiError(t, err, http.StatusConflict)
	if !contains(ae.Message, `"researchers"`, base, "change it there") || len(ae.Errors) != 1 || ae.Errors[0].File != "mine.yaml" || ae.Errors[0].Line != 3 {
		t.Fatalf("collision: %+v", ae)
	}
	if stored, _ := e.f.Store.ListPolicies(ctx); len(stored) != 0 {
		t.Fatalf("a refused apply stored %d policies", len(stored))
	}
	val, err := e.c.ValidatePolicies(ctx, api.PolicyFile{Name: "mine.yaml", YAML: "name: researchers\n"})
	if err != nil || val.Valid || len(val.Errors) != 1 || !strings.Contains(val.Errors[0].Message, base) {
		t.Fatalf("ValidatePolicies = %+v, %v", val, err)
	}

	_, err = e.c.DeletePolicy(ctx, "researchers")
	ae = apiError(t, err, http.StatusConflict)
	if !contains(ae.Message, base, "delete it there") {
		t.Fatalf("delete of a file policy: %+v", ae)
	}
	if _, ok := e.f.Policies.Current().Policy("researchers"); !ok {
		t.Fatal("the file policy is gone")
	}
}

func TestReadyFollowsThePolicyFiles(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if st, err := e.c.Ready(ctx); err != nil || st.Status != "ready" || st.PolicyRevision == "" {
		t.Fatalf("Ready = %+v, %v", st, err)
	}
	good := e.f.Policies.Current().Revision()

	broken := filepath.Join(e.dir, "broken.yaml")
	writeFile(t, broken, "name: broken\nrules:\n  - {effect: allow}\n")
	if _, err := e.f.Policies.Reload(ctx); err == nil { // what the watcher does
		t.Fatal("a broken file loaded")
	}
	st, err := e.c.Ready(ctx)
	apiError(t, err, http.StatusServiceUnavailable)
	if st.Status != "not_ready" || len(st.Errors) == 0 || !strings.Contains(strings.Join(st.Errors, "\n"), "broken.yaml:3") {
		t.Fatalf("Ready with a broken file = %+v", st)
	}
	// The last good set stays in force, and says so.
	if got := e.f.Policies.Current().Revision(); got != good {
		t.Fatalf("revision %s, want the last good %s", got, good)
	}
	list, err := e.c.ListPolicies(ctx)
	if err != nil || list.Revision != good || len(list.LoadErrors) == 0 || list.LoadErrors[0].File != broken {
		t.Fatalf("ListPolicies = %+v, %v", list, err)
	}
	// Applying while the files are broken is refused, naming the file.
	_, err = e.c.ApplyPolicies(ctx, api.PolicyFile{Name: "x.yaml", YAML: "name: x\n"})
	if ae := apiError(t, err, http.StatusConflict); len(ae.Errors) == 0 || ae.Errors[0].File != broken {
		t.Fatalf("apply with broken files: %+v", ae)
	}

	writeFile(t, broken, "name: broken\nrules:\n  - {effect: allow, actions: [\"read:*\"]}\n")
	if _, err := e.f.Policies.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := e.c.Ready(ctx); err != nil || st.Status != "ready" || st.PolicyRevision == good {
		t.Fatalf("Ready after the fix = %+v, %v", st, err)
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
}

// TestStoredPolicyFileClash: a file added later with a stored policy's name
// breaks the load (the operator is told by /ready); deleting the stored
// policy through the API mends it.
func TestStoredPolicyFileClash(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.c.ApplyPolicies(ctx, api.PolicyFile{Name: "t.yaml", YAML: "name: tickets\n"}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(e.dir, "tickets.yaml"), "name: tickets\n")
	_, err := e.f.Policies.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "duplicate policy name") {
		t.Fatalf("Reload = %v, want a duplicate name", err)
	}
	if _, err := e.c.Ready(ctx); err == nil {
		t.Fatal("ready with a duplicate name")
	}
	d, err := e.c.GetPolicy(ctx, "tickets")
	if err != nil || d.Source != api.SourceStored {
		t.Fatalf("GetPolicy = %+v, %v", d, err)
	}
	del, err := e.c.DeletePolicy(ctx, "tickets")
	if err != nil || !del.InForce {
		t.Fatalf("DeletePolicy = %+v, %v", del, err)
	}
	if st, err := e.c.Ready(ctx); err != nil {
		t.Fatalf("Ready after mending = %+v, %v", st, err)
	}
	if p, ok := e.f.Policies.Current().Policy("tickets"); !ok || p.Source.File == "stored:tickets" {
		t.Fatalf("tickets in force: %+v", p)
	}
}

func TestPolicyEndpointsBadInput(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path, ctype, body string
		status                  int
		want                    string
	}{
		{"no policies", "/admin/policies", "application/yaml", "# nothing\n", 400, "no policies"},
		{"form body", "/admin/policies", "application/x-www-form-urlencoded", "name=x", 415, "application/yaml"},
		{"files missing", "/admin/policies", "application/json", `{}`, 400, "files"},
		{"file label posing as stored", "/admin/policies", "application/json", `{"files":[{"name":"stored:x","yaml":"name: x\n"}]}`, 400, "stored:"},
		{"unknown field", "/admin/policies/validate", "application/json", `{"files":[{"name":"a","yaml":"name: a\n","mode":"x"}]}`, 400, `unknown field "files[0].mode"`},
		{"unknown query", "/admin/policies?dryRun=1", "application/yaml", "name: x\n", 400, "dryRun"},
		{"test: both forms", "/admin/policies/test", "application/json", `{"tests":"tests: []","agent":"a"}`, 400, "either"},
		{"test: no action", "/admin/policies/test", "application/json", `{"agent":"a"}`, 400, "action"},
		{"test: bad tests", "/admin/policies/test", "application/json", `{"tests":"tests: 5"}`, 400, "list"},
		// yaml.v3 panics decoding this into a struct: a 400, not a dropped connection.
		{"test: a merge key the YAML decoder panics on", "/admin/policies/test", "application/json", `{"tests":"tests:\n  - &s 0\n  - {<<,0,[]}"}`, 400, "tests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, data := e.raw(t, http.MethodPost, tc.path, strings.NewReader(tc.body), adminHeaders(map[string]string{"Content-Type": tc.ctype}))
			b := errorBody(t, data)
			all := b.Message
			for _, le := range b.Errors {
				all += "\n" + le.String()
			}
			if status != tc.status || !strings.Contains(all, tc.want) {
				t.Fatalf("%d %s, want %d mentioning %q", status, data, tc.status, tc.want)
			}
		})
	}
	// A file label from ?file= locates errors.
	status, _, data := e.raw(t, http.MethodPost, "/admin/policies?file=policies/x.yaml", strings.NewReader("name: x\nrulez: 1\n"),
		adminHeaders(map[string]string{"Content-Type": "text/yaml"}))
	if b := errorBody(t, data); status != 400 || len(b.Errors) != 1 || b.Errors[0].File != "policies/x.yaml" || b.Errors[0].Line != 2 {
		t.Fatalf("%d %s", status, data)
	}
}

// TestReadyDoesNotQuotePolicyFiles: /ready is public, so a file that does
// not load is named with its line, never quoted — not a value, not a key,
// not a file that is no policy at all (a symlink to /etc/passwd once put
// the whole file there). GET /admin/policies, behind the admin token, has
// the messages.
func TestReadyDoesNotQuotePolicyFiles(t *testing.T) {
	const secret = "s3cr3t-Hunter2"
	tests := []struct {
		name, content, detail string
	}{
		{"not a policy", "root:x:0:0:" + secret + ":/root:/bin/bash\n", "expected a mapping"},
		{"unknown key", "name: p\n" + secret + ": 1\n", "unknown key"},
		{"bad value", "name: p\nrules:\n  - {name: r, effect: " + secret + ", actions: [\"read:*\"]}\n", "not an effect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := t.Context()
			writeFile(t, filepath.Join(e.dir, "leak.yaml"), tt.content)
			if _, err := e.f.Policies.Reload(ctx); err == nil {
				t.Fatal("the file loaded")
			}
			resp, err := http.Get(e.srv.URL + "/ready")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "leak.yaml:") {
				t.Fatalf("/ready = %d %s; want 503 naming leak.yaml and its line", resp.StatusCode, body)
			}
			if strings.Contains(string(body), secret) || strings.Contains(string(body), tt.detail) {
				t.Fatalf("/ready quotes the file: %s", body)
			}
			list, err := e.c.ListPolicies(ctx)
			if err != nil || len(list.LoadErrors) == 0 || !strings.Contains(list.LoadErrors[0].Message, tt.detail) {
				t.Fatalf("GET /admin/policies has no detail: %+v, %v", list.LoadErrors, err)
			}
		})
	}
}

// TestReadyBoundsPolicyErrors: however many files fail, /ready names a
// bounded number of them.
func TestReadyBoundsPolicyErrors(t *testing.T) {
	e := newEnv(t)
	for i := range 30 {
		writeFile(t, filepath.Join(e.dir, fmt.Sprintf("broken%02d.yaml", i)), "name: [\n")
	}
	if _, err := e.f.Policies.Reload(t.Context()); err == nil {
		t.Fatal("the files loaded")
	}
	st, err := e.c.Ready(t.Context())
	apiError(t, err, http.StatusServiceUnavailable)
	if len(st.Errors) != 11 || !strings.Contains(st.Errors[10], "more errors") {
		t.Fatalf("/ready errors: %d %q", len(st.Errors), st.Errors)
	}
}
