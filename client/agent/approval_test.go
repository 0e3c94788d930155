package agent_test

// Contract tests: the SDK's side of waiting on a human approval, against a
// loopback HTTP server that answers as docs/api.md's approval contract says
// (GET /v1/approvals/{id} with ?wait, POST /v1/check with Prefer: wait, a
// 403 approval_required naming the approval). TestConformance runs the same
// behaviour against the real meshguard serve.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/client/agent"
)

// approvals is a loopback server keeping approvals as the contract does.
type approvals struct {
	mu      sync.Mutex
	status  map[string]string
	changed chan struct{} // closed and replaced on every decision
	polls   int           // GETs of an approval
	waits   []string      // the ?wait of each GET
	prefer  []string      // the Prefer header of each check
}

const contractTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

func newApprovals(t *testing.T) (*approvals, string) {
	t.Helper()
	s := &approvals{status: map[string]string{}, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/check", s.check)
	mux.HandleFunc("GET /v1/approvals/{id}", s.get)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// decide sets an approval's status, waking held requests.
func (s *approvals) decide(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[id] = status
	close(s.changed)
	s.changed = make(chan struct{})
}

// await holds until id is no longer pending or wait ends; it returns the status.
func (s *approvals) await(ctx context.Context, id string, wait time.Duration) (string, bool) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		s.mu.Lock()
		st, ok := s.status[id]
		ch := s.changed
		s.mu.Unlock()
		if !ok || st != "pending" {
			return st, ok
		}
		select {
		case <-ch:
		case <-t.C:
			return st, ok
		case <-ctx.Done():
			return st, ok
		}
	}
}

// check: the action names the approval ("approve:<id>"); pending is a 403
// approval_required, approved is an allow that uses it.
func (s *approvals) check(w http.ResponseWriter, r *http.Request) {
	var req struct{ Action string }
	_ = json.NewDecoder(r.Body).Decode(&req)
	id := strings.TrimPrefix(req.Action, "approve:")
	s.mu.Lock()
	s.prefer = append(s.prefer, r.Header.Get("Prefer"))
	if _, ok := s.status[id]; !ok {
		s.status[id] = "pending"
	}
	s.mu.Unlock()
	st, _ := s.await(r.Context(), id, 0)
	if p := r.Header.Get("Prefer"); strings.HasPrefix(p, "wait=") {
		n, _ := strconv.Atoi(strings.TrimPrefix(p, "wait="))
		st, _ = s.await(r.Context(), id, time.Duration(n)*time.Second)
		w.Header().Set("Preference-Applied", p)
	}
	w.Header().Set("Content-Type", "application/json")
	switch st {
	case "approved":
		s.decide(id, "used")
		fmt.Fprintf(w, `{"decision":"allow","allowed":true,"status":200,"reason":"approval_granted","traceId":%q,"decisionId":"dec_1","chain":[],"mode":"enforce"}`, contractTrace)
	default:
		reason := map[string]string{"pending": "approval_required", "denied": "approval_denied", "expired": "approval_expired", "used": "approval_required"}[st]
		w.Header().Set(agent.HeaderApproval, id)
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"decision":"deny","allowed":false,"status":403,"error":"forbidden","reason":%q,"trace_id":%q,"decisionId":"dec_2","chain":[],"mode":"enforce","approval_id":%q,"approval_url":"/v1/approvals/%s"}`,
			reason, contractTrace, id, id)
	}
}

func (s *approvals) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := strconv.Atoi(r.URL.Query().Get("wait"))
	if err != nil || n < 1 || n > 60 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"bad_request","message":"wait: want 1 to 60 seconds"}`)
		return
	}
	s.mu.Lock()
	s.polls++
	s.waits = append(s.waits, r.URL.Query().Get("wait"))
	s.mu.Unlock()
	st, ok := s.await(r.Context(), id, time.Duration(n)*time.Second)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"not_found","reason":"not_found"}`)
		return
	}
	fmt.Fprintf(w, `{"id":%q,"status":%q,"action":"approve:%s","agentId":"agt_1","createdAt":"2026-12-06T10:00:00Z","expiresAt":"2026-12-07T10:00:00Z","traceId":%q}`,
		id, st, id, contractTrace)
}

func (s *approvals) pollCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

// TestContractApprovalRequiredIsItsOwnError: Require's error names the
// approval, is ErrApprovalRequired and still ErrDenied (fail closed for
// code that knows only the kinds); Check returns it as a decision.
func TestContractApprovalRequiredIsItsOwnError(t *testing.T) {
	_, url := newApprovals(t)
	a, err := agent.New(url, secretToken)
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.Check(context.Background(), "approve:apr_1", "", nil)
	if err != nil || d.Allowed || d.ApprovalID != "apr_1" {
		t.Fatalf("Check = %+v, %v; want a denial naming apr_1", d, err)
	}
	_, err = a.Require(context.Background(), "approve:apr_1", "", nil)
	var e *agent.Error
	if !errors.As(err, &e) || !errors.Is(err, agent.ErrApprovalRequired) || !errors.Is(err, agent.ErrDenied) {
		t.Fatalf("Require error %v: want ErrApprovalRequired and ErrDenied", err)
	}
	if e.ApprovalID != "apr_1" || e.ApprovalURL != "/v1/approvals/apr_1" || e.TraceID != contractTrace || e.Reason != "approval_required" {
		t.Errorf("error %+v: want approval apr_1, its URL, reason and trace id", e)
	}
	if errors.Is(err, agent.ErrApprovalDenied) || errors.Is(err, agent.ErrApprovalTimeout) {
		t.Errorf("error %v matches another approval sentinel", err)
	}
}

// TestContractWaitForApproval: the wait ends with the approval's decision,
// whatever it is, and only then; a pending approval at the deadline is
// ErrApprovalTimeout, never an allow.
func TestContractWaitForApproval(t *testing.T) {
	for _, tc := range []struct {
		name, decision string
		want           error
	}{
		{"approved returns the approval", "approved", nil},
		{"denied is ErrApprovalDenied", "denied", agent.ErrApprovalDenied},
		{"expired is ErrApprovalExpired", "expired", agent.ErrApprovalExpired},
		{"used is ErrApprovalExpired", "used", agent.ErrApprovalExpired},
		{"still pending at the deadline is ErrApprovalTimeout", "", agent.ErrApprovalTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := newApprovals(t)
			a, err := agent.New(url, secretToken)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Check(context.Background(), "approve:apr_w", "", nil); err != nil {
				t.Fatal(err)
			}
			timeout := 30 * time.Second
			if tc.decision == "" {
				timeout = 1500 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			type result struct {
				ap  agent.Approval
				err error
			}
			done := make(chan result, 1)
			go func() {
				ap, err := a.WaitForApproval(ctx, "apr_w")
				done <- result{ap, err}
			}()
			if tc.decision != "" {
				// Decide once the SDK is holding a poll: the decision must end that wait.
				deadline := time.Now().Add(10 * time.Second)
				for s.pollCount() == 0 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				s.decide("apr_w", tc.decision)
			}
			r := <-done
			if tc.want == nil {
				if r.err != nil || r.ap.Status != "approved" || r.ap.ID != "apr_w" {
					t.Fatalf("WaitForApproval = %+v, %v; want approved", r.ap, r.err)
				}
				return
			}
			var e *agent.Error
			if !errors.Is(r.err, tc.want) || !errors.As(r.err, &e) || e.ApprovalID != "apr_w" {
				t.Fatalf("WaitForApproval error %v: want %v naming apr_w", r.err, tc.want)
			}
			if tc.want == agent.ErrApprovalTimeout && !errors.Is(r.err, agent.ErrApprovalRequired) {
				t.Errorf("a timeout is not ErrApprovalRequired: %v", r.err)
			}
			if tc.want != agent.ErrApprovalTimeout && errors.Is(r.err, agent.ErrApprovalTimeout) {
				t.Errorf("%v is ErrApprovalTimeout", r.err)
			}
		})
	}
}

// TestContractWaitBounds: each poll asks for at most 60 s and no more than
// what is left; a bad id is refused before anything is sent; an unknown
// one is a bad request, not an allow.
func TestContractWaitBounds(t *testing.T) {
	s, url := newApprovals(t)
	a, err := agent.New(url, secretToken)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "apr/../x", strings.Repeat("a", 200), "apr 1"} {
		if _, err := a.WaitForApproval(context.Background(), id); !errors.Is(err, agent.ErrBadRequest) {
			t.Errorf("WaitForApproval(%q) = %v, want ErrBadRequest", id, err)
		}
	}
	if s.pollCount() != 0 {
		t.Fatalf("a refused id reached the server (%d polls)", s.pollCount())
	}
	if _, err := a.WaitForApproval(context.Background(), "apr_unknown"); !errors.Is(err, agent.ErrBadRequest) {
		t.Errorf("an unknown approval: %v, want ErrBadRequest (404)", err)
	}
	if _, err := a.Check(context.Background(), "approve:apr_b", "", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if _, err := a.WaitForApproval(ctx, "apr_b"); !errors.Is(err, agent.ErrApprovalTimeout) {
		t.Fatalf("err %v, want ErrApprovalTimeout", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.waits[1:] {
		if n, _ := strconv.Atoi(w); n < 1 || n > 2 {
			t.Errorf("a poll asked to wait %q s with at most 2.5 s left", w)
		}
	}
}

// TestContractCheckPreferWait: PreferWait sends Prefer: wait=N and the
// answer is the final decision; the one-call Require waits and asks again.
func TestContractCheckPreferWait(t *testing.T) {
	s, url := newApprovals(t)
	a, err := agent.New(url, secretToken, agent.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Check(context.Background(), "approve:apr_p", "", nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// The wait (3 s) outlasts the client's timeout (1 s): held, not cut off.
		d, err := a.Check(context.Background(), "approve:apr_p", "", nil, agent.PreferWait(3*time.Second))
		if err == nil && (!d.Allowed || d.Reason != "approval_granted") {
			err = fmt.Errorf("decision %+v, want approval_granted", d)
		}
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		n := len(s.prefer)
		s.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.AfterFunc(1500*time.Millisecond, func() { s.decide("apr_p", "approved") })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	if got := s.prefer[1]; got != "wait=3" {
		t.Errorf("Prefer = %q, want wait=3", got)
	}
	s.mu.Unlock()
	for _, bad := range []time.Duration{0, 500 * time.Millisecond, 61 * time.Second} {
		if _, err := a.Check(context.Background(), "approve:apr_p", "", nil, agent.PreferWait(bad)); !errors.Is(err, agent.ErrBadRequest) {
			t.Errorf("PreferWait(%v): %v, want ErrBadRequest", bad, err)
		}
	}

	// Require, waiting for the approval: one call.
	if _, err := a.Check(context.Background(), "approve:apr_r", "", nil); err != nil {
		t.Fatal(err)
	}
	go func() {
		for s.pollCount() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		s.decide("apr_r", "approved")
	}()
	d, err := a.Require(context.Background(), "approve:apr_r", "", nil, agent.WaitingForApproval(30*time.Second))
	if err != nil || d.Reason != "approval_granted" {
		t.Fatalf("Require waiting = %+v, %v; want approval_granted", d, err)
	}
}
