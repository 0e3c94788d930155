package agent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client/agent"
)

// approvalAct is a case's `then`: what the runner does, through the admin
// API, while the step runs.
type approvalAct struct {
	Approve  bool   `json:"approve"`
	By       string `json:"by"`
	Approval string `json:"approval"`
}

// decide approves or denies a saved approval through the admin API.
func (s served) decide(t *testing.T, act approvalAct, approvals map[string]string) error {
	id := approvals[act.Approval]
	if id == "" {
		return fmt.Errorf("then.approval %q: no earlier case saved it", act.Approval)
	}
	verb := "deny"
	if act.Approve {
		verb = "approve"
	}
	body, _ := json.Marshal(map[string]string{"by": act.By})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/admin/approvals/"+id+"/"+verb, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderAdminToken, s.adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /admin/approvals/%s/%s: %d %s", id, verb, res.StatusCode, data)
	}
	return nil
}

// whileDeciding runs step; with the case's `then`, it approves or denies
// the approval through the admin API once the step has started, and
// returns what the step returned. Whether the decision reaches MeshGuard
// before or during the step's wait, the step's answer is the same.
func whileDeciding(t *testing.T, s served, c conformanceCase, approvals map[string]string, step func() (api.Decision, error)) (api.Decision, error) {
	t.Helper()
	if c.Then == nil {
		return step()
	}
	type result struct {
		d   api.Decision
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := step()
		done <- result{d, err}
	}()
	if err := s.decide(t, *c.Then, approvals); err != nil {
		<-done
		t.Fatal(err)
	}
	r := <-done
	return r.d, r.err
}

// checkApproval checks a case's approval expectations and saves the
// approval it names.
func checkApproval(t *testing.T, c conformanceCase, d api.Decision, err error, approvals map[string]string) {
	t.Helper()
	id := d.ApprovalID
	var e *agent.Error
	if errors.As(err, &e) {
		id = e.ApprovalID
	}
	if c.SaveApproval != "" {
		if id == "" {
			t.Fatalf("saveApproval %q: the step named no approval (decision %+v, error %v)", c.SaveApproval, d, err)
		}
		approvals[c.SaveApproval] = id
	}
	if c.Expect.ApprovalID && id == "" {
		t.Errorf("no approval id surfaced (decision %+v, error %v)", d, err)
	}
	if c.Expect.Approval == "" {
		return
	}
	want := map[string]error{
		"required": agent.ErrApprovalRequired, "denied": agent.ErrApprovalDenied, "expired": agent.ErrApprovalExpired,
		"timeout": agent.ErrApprovalTimeout, "limit": agent.ErrApprovalLimit,
	}[c.Expect.Approval]
	if want == nil {
		t.Fatalf("expect.approval %q: no such approval error", c.Expect.Approval)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %v, want %v", err, want)
	}
}

// denialFromAnswer sends a plain request (no SDK) to the case's answer
// server, as an agent calling through a gateway does, and reads the answer
// with DenialFrom.
func denialFromAnswer(t *testing.T, url string) error {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/proxy/peer/task", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return agent.DenialFrom(res)
}
