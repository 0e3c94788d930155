package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/api"
)

// --- Human approvals (docs/api.md#human-approvals) ----------------------

// ApprovalFilter selects approvals for ListApprovals; zero fields select
// everything, newest first.
type ApprovalFilter struct {
	Status  string // pending, approved, denied, expired, used
	AgentID string // the agent that asked (an id: resolve a name with GetAgent)
	Before  string // the Next of the previous page
	Limit   int    // 1..1000; 0: the server's default (100)
}

// ListApprovals returns one page of approvals, newest first.
func (c *Client) ListApprovals(ctx context.Context, f ApprovalFilter) (api.ApprovalList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "agent": f.AgentID, "before": f.Before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out api.ApprovalList
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/admin/approvals", query: q, auth: authAdmin, out: &out})
	return out, err
}

// GetApproval returns everything about one approval (the admin's view,
// with the recorded arguments).
func (c *Client) GetApproval(ctx context.Context, id string) (api.Approval, error) {
	var out api.Approval
	err := c.doJSON(ctx, http.MethodGet, "/admin/approvals/"+seg(id), authAdmin, nil, &out)
	return out, err
}

// DecideApproval approves (approve true) or denies a pending approval as
// d.By, and returns it as decided. A decided or expired one is a 409
// *APIError (Code approval_not_pending or approval_expired).
func (c *Client) DecideApproval(ctx context.Context, id string, approve bool, d api.ApprovalDecision) (api.Approval, error) {
	verb := "/deny"
	if approve {
		verb = "/approve"
	}
	var out api.Approval
	err := c.doJSON(ctx, http.MethodPost, "/admin/approvals/"+seg(id)+verb, authAdmin, d, &out)
	return out, err
}

// FollowApproval reads an approval as the agent that asked for it (the
// agent token), holding the answer up to wait (whole seconds, 1 s to 60 s;
// 0: at once) until it is decided. A wait longer than the client's
// Timeout needs a client with a longer one.
func (c *Client) FollowApproval(ctx context.Context, id string, wait time.Duration) (api.Approval, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", strconv.Itoa(int(wait/time.Second)))
	}
	var out api.Approval
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/approvals/" + seg(id), query: q, auth: authAgent, out: &out})
	return out, err
}
