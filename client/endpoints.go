package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/api"
)

// The API's endpoints, one method each (docs/api.md).

// --- Agents --------------------------------------------------------------

// CreateAgent registers an agent and returns it with its first token.
func (c *Client) CreateAgent(ctx context.Context, req api.CreateAgentRequest) (api.AgentWithToken, error) {
	var out api.AgentWithToken
	err := c.doJSON(ctx, http.MethodPost, "/admin/agents", authAdmin, req, &out)
	return out, err
}

// ListAgents returns one page of agents in name order.
func (c *Client) ListAgents(ctx context.Context, f AgentFilter) (api.AgentList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"trust": f.Trust, "status": f.Status, "tag": f.Tag, "after": f.After} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out api.AgentList
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/admin/agents", query: q, auth: authAdmin, out: &out})
	return out, err
}

// GetAgent returns the agent with the given id or name.
func (c *Client) GetAgent(ctx context.Context, idOrName string) (api.Agent, error) {
	var out api.Agent
	err := c.doJSON(ctx, http.MethodGet, "/admin/agents/"+seg(idOrName), authAdmin, nil, &out)
	return out, err
}

// UpdateAgent changes the fields p sets and returns the agent as stored.
func (c *Client) UpdateAgent(ctx context.Context, idOrName string, p api.AgentPatch) (api.Agent, error) {
	var out api.Agent
	err := c.doJSON(ctx, http.MethodPatch, "/admin/agents/"+seg(idOrName), authAdmin, p, &out)
	return out, err
}

// RevokeAgent revokes the agent (all its tokens stop working at once) and
// returns it.
func (c *Client) RevokeAgent(ctx context.Context, idOrName string) (api.Agent, error) {
	var out api.Agent
	err := c.doJSON(ctx, http.MethodDelete, "/admin/agents/"+seg(idOrName), authAdmin, nil, &out)
	return out, err
}

// IssueToken issues a new token for the agent; ttl 0 means the server's
// default lifetime.
func (c *Client) IssueToken(ctx context.Context, idOrName string, ttl time.Duration) (api.Token, error) {
	var out api.Token
	err := c.doJSON(ctx, http.MethodPost, "/admin/agents/"+seg(idOrName)+"/token", authAdmin, api.TokenRequest{TTL: api.Duration(ttl)}, &out)
	return out, err
}

// RevokeToken revokes one agent token (req.Token, or req.JTI and
// req.AgentID); the agent's other tokens keep working.
func (c *Client) RevokeToken(ctx context.Context, req api.RevokeTokenRequest) (api.RevokedToken, error) {
	var out api.RevokedToken
	err := c.doJSON(ctx, http.MethodPost, "/admin/tokens/revoke", authAdmin, req, &out)
	return out, err
}

// ListRevokedTokens returns a page of the revoked tokens that have not
// expired, in jti order: after a jti ("" for the first page), at most
// limit (0: the server's default).
func (c *Client) ListRevokedTokens(ctx context.Context, after string, limit int) (api.RevokedTokenList, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.RevokedTokenList
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/admin/tokens/revoked", query: q, auth: authAdmin, out: &out})
	return out, err
}

// --- Policies ------------------------------------------------------------

// ListPolicies returns the policies in force.
func (c *Client) ListPolicies(ctx context.Context) (api.PolicyList, error) {
	var out api.PolicyList
	err := c.doJSON(ctx, http.MethodGet, "/admin/policies", authAdmin, nil, &out)
	return out, err
}

// GetPolicy returns one policy, in force or stored.
func (c *Client) GetPolicy(ctx context.Context, name string) (api.PolicyDetail, error) {
	var out api.PolicyDetail
	err := c.doJSON(ctx, http.MethodGet, "/admin/policies/"+seg(name), authAdmin, nil, &out)
	return out, err
}

// GetPolicyYAML returns a stored policy's YAML, verbatim.
func (c *Client) GetPolicyYAML(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/admin/policies/" + seg(name),
		query: url.Values{"format": {"yaml"}}, auth: authAdmin, out: &out})
	return out, err
}

// ApplyPolicies validates the files as one change against the policies in
// force and, if all is well, stores their policies and reloads. On any
// error nothing is stored and the *APIError lists the located errors.
func (c *Client) ApplyPolicies(ctx context.Context, files ...api.PolicyFile) (api.ApplyResult, error) {
	var out api.ApplyResult
	err := c.doJSON(ctx, http.MethodPost, "/admin/policies", authAdmin, api.ApplyRequest{Files: files}, &out)
	return out, err
}

// ApplyPolicyYAML applies one YAML stream (one or more documents), as
// `curl --data-binary @file -H 'Content-Type: application/yaml'` does.
func (c *Client) ApplyPolicyYAML(ctx context.Context, yaml []byte) (api.ApplyResult, error) {
	var out api.ApplyResult
	_, err := c.do(ctx, call{method: http.MethodPost, path: "/admin/policies", auth: authAdmin,
		body: nonNilBytes(yaml), contentType: "application/yaml", out: &out})
	return out, err
}

// ValidatePolicies runs every check ApplyPolicies would, storing nothing.
// Invalid policies are not an error: see api.ValidateResult.Valid.
func (c *Client) ValidatePolicies(ctx context.Context, files ...api.PolicyFile) (api.ValidateResult, error) {
	var out api.ValidateResult
	err := c.doJSON(ctx, http.MethodPost, "/admin/policies/validate", authAdmin, api.ApplyRequest{Files: files}, &out)
	return out, err
}

// DeletePolicy deletes a stored policy and reloads. A policy defined in a
// file is refused (409): delete it there.
func (c *Client) DeletePolicy(ctx context.Context, name string) (api.DeleteResult, error) {
	var out api.DeleteResult
	err := c.doJSON(ctx, http.MethodDelete, "/admin/policies/"+seg(name), authAdmin, nil, &out)
	return out, err
}

// TestPolicy evaluates one case against the live agents and the policies
// in force. A denial is a result, not an error.
func (c *Client) TestPolicy(ctx context.Context, req api.PolicyTestRequest) (api.PolicyTestResult, error) {
	req.Tests = ""
	var out api.PolicyTestResult
	err := c.doJSON(ctx, http.MethodPost, "/admin/policies/test", authAdmin, req, &out)
	return out, err
}

// RunPolicyTests runs a tests file (its content) against the live agents
// and the policies in force.
func (c *Client) RunPolicyTests(ctx context.Context, tests string, verbose bool) (api.TestReport, error) {
	var out api.TestReport
	err := c.doJSON(ctx, http.MethodPost, "/admin/policies/test", authAdmin, api.PolicyTestRequest{Tests: tests, Verbose: verbose}, &out)
	return out, err
}

// --- Keys ----------------------------------------------------------------

// RotateKeys makes a new signing key current; alg "" keeps the current
// algorithm. Tokens signed by the old key stay valid until they expire.
func (c *Client) RotateKeys(ctx context.Context, alg string) (api.RotatedKey, error) {
	var out api.RotatedKey
	err := c.doJSON(ctx, http.MethodPost, "/admin/keys/rotate", authAdmin, api.RotateKeyRequest{Alg: alg}, &out)
	return out, err
}

// --- Agents' endpoints ---------------------------------------------------

// Check asks whether the client's agent may perform an action. An allowed
// request returns the decision and a nil error; a denial returns the
// decision too, with an *APIError whose Decision is set (ExitCode 4 for
// 403/429, 3 for 401).
func (c *Client) Check(ctx context.Context, req api.CheckRequest) (api.Decision, error) {
	k, err := c.jsonCall(http.MethodPost, "/v1/check", authAgent, req, nil)
	if err != nil {
		return api.Decision{}, err
	}
	var raw []byte
	k.out = &raw
	k.header = http.Header{}
	if req.Delegation != "" {
		k.header.Set(api.HeaderDelegation, req.Delegation)
	}
	if req.TraceParent != "" {
		k.header.Set(api.HeaderTraceParent, req.TraceParent)
	}
	_, err = c.do(ctx, k)
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		// A denial's body is the whole decision.
		var d api.Decision
		if json.Unmarshal(raw, &d) == nil && d.Decision != "" {
			ae.Decision = &d
			return d, err
		}
		return api.Decision{}, err
	case err != nil:
		return api.Decision{}, err
	}
	var d api.Decision
	if err := json.Unmarshal(raw, &d); err != nil {
		return api.Decision{}, fmt.Errorf("meshguard client: POST /v1/check: decoding the answer: %w", err)
	}
	return d, nil
}

// Delegate asks for a delegation token that lets req.Delegate act for the
// client's agent (docs/api.md, POST /v1/delegations).
func (c *Client) Delegate(ctx context.Context, req api.DelegationRequest) (api.DelegationToken, error) {
	k, err := c.jsonCall(http.MethodPost, "/v1/delegations", authAgent, req, nil)
	if err != nil {
		return api.DelegationToken{}, err
	}
	var out api.DelegationToken
	k.out = &out
	if req.Parent != "" {
		k.header = http.Header{api.HeaderDelegation: {req.Parent}}
	}
	_, err = c.do(ctx, k)
	return out, err
}

// --- Public endpoints ----------------------------------------------------

// Health returns nil while the server serves.
func (c *Client) Health(ctx context.Context) error {
	return c.doJSON(ctx, http.MethodGet, "/health", authNone, nil, nil)
}

// Ready returns the readiness report; a server that is not ready answers
// 503, returned as an *APIError alongside the report.
func (c *Client) Ready(ctx context.Context) (api.ReadyStatus, error) {
	var raw []byte
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/ready", out: &raw})
	var st api.ReadyStatus
	var ae *APIError
	if errors.As(err, &ae) {
		if json.Unmarshal(raw, &st) != nil || st.Status == "" {
			st = api.ReadyStatus{Status: "not_ready", Errors: []string{ae.Message}}
		}
		return st, err
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("meshguard client: GET /ready: decoding the answer: %w", err)
	}
	return st, nil
}

// JWKS returns the JWKS document.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, call{method: http.MethodGet, path: api.JWKSPath, out: &out})
	return out, err
}

// --- xDS -----------------------------------------------------------------

// XDSStatus reports each node of the xDS server: what it ACKed, and its
// last NACK.
func (c *Client) XDSStatus(ctx context.Context) (api.XDSStatus, error) {
	var out api.XDSStatus
	err := c.doJSON(ctx, http.MethodGet, "/admin/xds/status", authAdmin, nil, &out)
	return out, err
}

// Alerts reports how alerting is configured and what waits in the outbox.
func (c *Client) Alerts(ctx context.Context) (api.AlertsStatus, error) {
	var out api.AlertsStatus
	err := c.doJSON(ctx, http.MethodGet, "/admin/alerts", authAdmin, nil, &out)
	return out, err
}

// TestAlerts sends a clearly marked test alert to every configured
// provider, directly, and reports each one's result.
func (c *Client) TestAlerts(ctx context.Context) ([]api.AlertTestResult, error) {
	var out struct {
		Results []api.AlertTestResult `json:"results"`
	}
	err := c.doJSON(ctx, http.MethodPost, "/admin/alerts/test", authAdmin, nil, &out)
	return out.Results, err
}

// FilterConfig returns the wasm filter's configuration in force, as a
// filter fetches it (GET /admin/filter/config: the same document as
// /v1/filter/config, for the admin token).
func (c *Client) FilterConfig(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.doJSON(ctx, http.MethodGet, "/admin/filter/config", authAdmin, nil, &out)
	return out, err
}

// --- Services --------------------------------------------------------------

// ListServices returns the service catalogue: SERVICES_FILE's services and
// those put through the API, each with its source.
func (c *Client) ListServices(ctx context.Context) ([]api.ServiceEntry, error) {
	var out api.ServiceList
	err := c.doJSON(ctx, http.MethodGet, "/admin/services", authAdmin, nil, &out)
	return out.Services, err
}

// GetService returns one service of the catalogue.
func (c *Client) GetService(ctx context.Context, name string) (api.ServiceEntry, error) {
	var out api.ServiceEntry
	err := c.doJSON(ctx, http.MethodGet, "/admin/services/"+seg(name), authAdmin, nil, &out)
	return out, err
}

// PutService adds or replaces a service (s.Name names it).
func (c *Client) PutService(ctx context.Context, s api.Service) (api.ServiceEntry, error) {
	var out api.ServiceEntry
	err := c.doJSON(ctx, http.MethodPut, "/admin/services/"+seg(s.Name), authAdmin, s, &out)
	return out, err
}

// DeleteService removes a service put through the API.
func (c *Client) DeleteService(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/admin/services/"+seg(name), authAdmin, nil, nil)
}
