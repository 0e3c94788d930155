package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client/agent"
)

// table is sdk/conformance/cases.json (sdk/conformance/README.md).
type table struct {
	Agents []struct {
		Name      string   `json:"name"`
		TrustTier string   `json:"trustTier"`
		Tags      []string `json:"tags"`
		Revoked   bool     `json:"revoked"`
	} `json:"agents"`
	Cases []conformanceCase `json:"cases"`
}

type conformanceCase struct {
	Name      string `json:"name"`
	As        string `json:"as"`
	ActingFor string `json:"actingFor"`
	Server    string `json:"server"`
	Answer    struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	} `json:"answer"`
	Do       string         `json:"do"`
	Action   string         `json:"action"`
	Resource string         `json:"resource"`
	Context  map[string]any `json:"context"`
	Times    int            `json:"times"`
	To       string         `json:"to"`
	Actions  []string       `json:"actions"`
	MaxDepth int            `json:"maxDepth"`
	Save     string         `json:"save"`
	// The approval steps (sdk/conformance/README.md).
	SaveApproval    string       `json:"saveApproval"`
	Approval        string       `json:"approval"`
	Timeout         int          `json:"timeout"`
	Wait            int          `json:"wait"`
	WaitForApproval int          `json:"waitForApproval"`
	Then            *approvalAct `json:"then"`
	Expect          struct {
		Allowed    *bool    `json:"allowed"`
		Reason     string   `json:"reason"`
		Policy     string   `json:"policy"`
		Rule       string   `json:"rule"`
		Chain      []string `json:"chain"`
		Error      string   `json:"error"`
		Status     int      `json:"status"`
		RetryAfter bool     `json:"retryAfter"`
		Token      bool     `json:"token"`
		Headers    []string `json:"headers"`
		Attempts   int32    `json:"attempts"`
		// Approval is the SDK's approval error: required, denied, expired, timeout, limit.
		Approval       string `json:"approval"`
		ApprovalID     bool   `json:"approvalId"`
		ApprovalStatus string `json:"approvalStatus"`
		Denial         *bool  `json:"denial"`
	} `json:"expect"`
}

// TestConformance runs every case of the SDK conformance table through
// this SDK's public surface against a real `meshguard serve` (a process
// built from this module, or MESHGUARD_BIN), each case a subtest named
// as the table names it.
func TestConformance(t *testing.T) {
	raw, err := os.ReadFile("../../sdk/conformance/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var tab table
	if err := json.Unmarshal(raw, &tab); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	if len(tab.Cases) == 0 {
		t.Fatal("cases.json holds no case")
	}
	s := serve(t, "../../sdk/conformance/policies")

	tokens := map[string]string{}
	names := map[string]string{} // agent id → name, to read chains
	for _, a := range tab.Agents {
		created := s.createAgent(t, a.Name, a.TrustTier, a.Tags)
		tokens[a.Name], names[created.ID] = created.Token, a.Name
		if a.Revoked {
			if _, err := s.admin.RevokeAgent(t.Context(), a.Name); err != nil {
				t.Fatalf("revoking %s: %v", a.Name, err)
			}
		}
	}
	servers := fakeServers(t)
	saved := map[string]string{}
	approvals := map[string]string{}
	for _, c := range tab.Cases {
		ok := t.Run(c.Name, func(t *testing.T) {
			token, found := strings.CutPrefix(c.As, "!")
			if !found {
				if token, found = tokens[c.As]; !found {
					t.Fatalf("as %q: no such agent in the table", c.As)
				}
			}
			delegation := saved[c.ActingFor]
			if c.ActingFor != "" && delegation == "" {
				t.Fatalf("actingFor %q: no earlier case saved it", c.ActingFor)
			}
			base := s.url
			var attempts *atomic.Int32
			if c.Server == "answer" {
				body := strings.NewReplacer("$TOKEN", token, "$DELEGATION", delegation).Replace(c.Answer.Body)
				base, attempts = answerServer(t, c.Answer.Status, c.Answer.Headers, body)
			} else if c.Server != "" {
				var found bool
				if base, found = servers[c.Server]; !found {
					t.Fatalf("server %q: the runner knows no such server", c.Server)
				}
			}
			a, err := agent.New(base, token)
			if err != nil {
				t.Fatal(err)
			}
			if a, err = a.ActingFor(delegation); err != nil {
				t.Fatal(err)
			}
			for range max(c.Times, 1) {
				runCase(t, s, a, base, c, names, saved, approvals, token, delegation)
			}
			if c.Expect.Attempts != 0 {
				if attempts == nil {
					t.Fatal(`expect.attempts needs "server": "answer"`)
				}
				if got := attempts.Load(); got != c.Expect.Attempts {
					t.Errorf("the answer server saw %d requests, want %d", got, c.Expect.Attempts)
				}
			}
		})
		if !ok && (c.Save != "" || c.SaveApproval != "") {
			t.Fatalf("case %q saves %q for later cases: stopping", c.Name, c.Save+c.SaveApproval)
		}
	}
}

// runCase runs one step of c and checks its expectations.
func runCase(t *testing.T, s served, a *agent.Agent, base string, c conformanceCase, names, saved, approvals map[string]string, secrets ...string) {
	t.Helper()
	var err error
	var d api.Decision
	var chain []string
	var opts []agent.CheckOption
	if c.Wait != 0 {
		opts = append(opts, agent.PreferWait(time.Duration(c.Wait)*time.Second))
	}
	if c.WaitForApproval != 0 {
		opts = append(opts, agent.WaitingForApproval(time.Duration(c.WaitForApproval)*time.Second))
	}
	switch c.Do {
	case "check":
		d, err = whileDeciding(t, s, c, approvals, func() (api.Decision, error) {
			return a.Check(t.Context(), c.Action, c.Resource, c.Context, opts...)
		})
		chain = d.Chain
	case "require":
		d, err = whileDeciding(t, s, c, approvals, func() (api.Decision, error) {
			return a.Require(t.Context(), c.Action, c.Resource, c.Context, opts...)
		})
		chain = d.Chain
	case "wait":
		var ap agent.Approval
		_, err = whileDeciding(t, s, c, approvals, func() (api.Decision, error) {
			id := approvals[c.Approval]
			if id == "" {
				t.Fatalf("approval %q: no earlier case saved it", c.Approval)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Duration(c.Timeout)*time.Second)
			defer cancel()
			var err error
			ap, err = a.WaitForApproval(ctx, id)
			return api.Decision{}, err
		})
		if err == nil && c.Expect.ApprovalStatus != "" && ap.Status != c.Expect.ApprovalStatus {
			t.Errorf("approval status %q, want %q", ap.Status, c.Expect.ApprovalStatus)
		}
	case "denial_from":
		err = denialFromAnswer(t, base)
		if c.Expect.Denial != nil && !*c.Expect.Denial {
			if err != nil {
				t.Errorf("DenialFrom = %v, want nil", err)
			}
			return
		}
		if err == nil {
			t.Fatal("DenialFrom = nil, want MeshGuard's refusal")
		}
	case "delegate":
		var tok api.DelegationToken
		tok, err = a.Delegate(t.Context(), c.To, c.Actions, c.MaxDepth, 0)
		chain = tok.Chain
		if err == nil && c.Save != "" {
			saved[c.Save] = tok.Token
		}
		if c.Expect.Token && (err != nil || tok.Token == "") {
			t.Errorf("no delegation token minted (error %v)", err)
		}
	case "headers":
		h := a.Headers(t.Context())
		for _, name := range c.Expect.Headers {
			if got := h.Values(name); len(got) != 1 || got[0] == "" {
				t.Errorf("header %s: %q, want one value", name, got)
			}
		}
		return
	default:
		t.Fatalf("do %q: the runner knows no such step", c.Do)
	}
	want := c.Expect
	checkApproval(t, c, d, err, approvals)
	if want.Error != "" {
		var e *agent.Error
		if !errors.As(err, &e) {
			t.Fatalf("error = %v, want an *agent.Error of kind %s", err, want.Error)
		}
		if string(e.Kind) != want.Error || !errors.Is(err, sentinel(t, want.Error)) {
			t.Errorf("error kind %s (%v), want %s", e.Kind, err, want.Error)
		}
		if want.Status != 0 && e.Status != want.Status {
			t.Errorf("error status %d, want %d", e.Status, want.Status)
		}
		if want.Reason != "" && e.Reason != want.Reason {
			t.Errorf("error reason %q, want %q", e.Reason, want.Reason)
		}
		if want.RetryAfter && e.RetryAfter <= 0 {
			t.Errorf("error retry-after %v, want a positive one", e.RetryAfter)
		}
		for _, secret := range secrets {
			for i, text := range []string{err.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), e.TraceID} {
				if secret != "" && strings.Contains(text, secret) {
					t.Errorf("the error's form %d (Error, %%+v, %%#v, TraceID) shows a token", i) // not quoted: it is one
				}
			}
		}
		if e.TraceID == "" { // the SDK sends a traceparent with every call
			t.Errorf("error %v names no trace id", err)
		}
		if d.Allowed {
			t.Errorf("an error came with an allowed decision: %+v", d)
		}
		return
	}
	if err != nil {
		t.Fatalf("error %v, want none", err)
	}
	if want.Allowed != nil && d.Allowed != *want.Allowed {
		t.Errorf("allowed = %t (%s %s/%s), want %t", d.Allowed, d.Reason, d.Policy, d.Rule, *want.Allowed)
	}
	for _, f := range []struct{ name, got, want string }{
		{"reason", d.Reason, want.Reason}, {"policy", d.Policy, want.Policy}, {"rule", d.Rule, want.Rule},
	} {
		if f.want != "" && f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if want.Chain != nil {
		var got []string
		for _, id := range chain {
			got = append(got, cmp(names[id], id))
		}
		if !slices.Equal(got, want.Chain) {
			t.Errorf("chain = %v, want %v", got, want.Chain)
		}
	}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sentinel(t *testing.T, kind string) error {
	t.Helper()
	switch agent.Kind(kind) {
	case agent.KindDenied:
		return agent.ErrDenied
	case agent.KindUnauthorized:
		return agent.ErrUnauthorized
	case agent.KindRateLimited:
		return agent.ErrRateLimited
	case agent.KindBadRequest:
		return agent.ErrBadRequest
	case agent.KindUnavailable:
		return agent.ErrUnavailable
	}
	t.Fatalf("error %q: no such kind", kind)
	return nil
}

// fakeServers are the table's `server` values: real loopback servers (and
// a port nothing listens on) that are not MeshGuard.
func fakeServers(t *testing.T) map[string]string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	servers := map[string]string{"unreachable": unreachable}
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"hello":"not a decision"}`))
	}))
	t.Cleanup(garbage.Close)
	servers["garbage"] = garbage.URL
	nested := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)))
	}))
	t.Cleanup(nested.Close)
	servers["nested"] = nested.URL
	for _, status := range []int{500, 502, 503, 504} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":"unavailable","message":"status %d from the runner"}`, status)
		}))
		t.Cleanup(srv.Close)
		servers["status:"+strconv.Itoa(status)] = srv.URL
	}
	return servers
}

// answerServer is the table's `answer` server: a loopback server answering
// every request with status, headers and body, byte for byte, and counting
// the requests it saw.
func answerServer(t *testing.T, status int, headers map[string]string, body string) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

// TestTraceParents runs sdk/conformance/traceparents.json: which incoming
// traceparents WithTraceParent continues (W3C's rule, as every SDK reads it).
func TestTraceParents(t *testing.T) {
	raw, err := os.ReadFile("../../sdk/conformance/traceparents.json")
	if err != nil {
		t.Fatal(err)
	}
	var tab struct {
		Cases []struct {
			Value   string `json:"value"`
			TraceID string `json:"traceId"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &tab); err != nil || len(tab.Cases) == 0 {
		t.Fatalf("traceparents.json: %v (%d cases)", err, len(tab.Cases))
	}
	a, err := agent.New("http://127.0.0.1", "tok")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tab.Cases {
		t.Run(c.Value, func(t *testing.T) {
			ctx, err := agent.WithTraceParent(t.Context(), c.Value)
			switch {
			case c.TraceID == "" && err == nil:
				t.Fatalf("accepted")
			case c.TraceID != "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.TraceID != "":
				if got := a.Headers(ctx).Get("traceparent"); got[:3] != "00-" || got[3:35] != c.TraceID {
					t.Errorf("continued as %q, want trace %s", got, c.TraceID)
				}
			}
		})
	}
}
