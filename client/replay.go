package client

import (
	"context"
	"net/http"

	"github.com/meshguard/meshguard/api"
)

// ReplayPolicies decides the recorded requests again with the candidate
// policies of req (POST /admin/policies/replay) and returns what would
// change.
func (c *Client) ReplayPolicies(ctx context.Context, req api.PolicyReplayRequest) (api.PolicyReplayReport, error) {
	var out api.PolicyReplayReport
	err := c.doJSON(ctx, http.MethodPost, "/admin/policies/replay", authAdmin, req, &out)
	return out, err
}
