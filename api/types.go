package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Header names of the API.
const (
	HeaderAdminToken  = "X-Admin-Token"
	HeaderDelegation  = "X-MeshGuard-Delegation"
	HeaderTraceParent = "traceparent"
)

// JWKSPath is where the server publishes its token verification keys.
const JWKSPath = "/.well-known/jwks.json"

// ReasonAdminTokenRequired is the reason of the 403 the admin API gives a
// request that carries an agent's bearer token instead of the admin token.
const ReasonAdminTokenRequired = "admin_token_required"

// Duration is a lifetime in JSON: a Go duration string such as "24h" or
// "90m", or a whole number of seconds. It encodes as a string.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON encodes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "24h"-style strings and whole seconds. A bad value
// is a *json.UnmarshalTypeError, so the decoder names the field.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	bad := func() error {
		return &json.UnmarshalTypeError{Value: "value " + truncate(string(b), 40), Type: reflect.TypeFor[Duration]()}
	}
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return bad()
		}
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			return bad()
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/int64(time.Second) {
		return bad()
	}
	*d = Duration(time.Duration(n) * time.Second)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ErrorBody is the body of every error response:
// {"error":"bad_request","message":"…"}, with the located errors of a
// policy load in Errors. Denials of /v1/check and /v1/delegations carry
// Reason (a stable reason code), Policy and Rule too.
type ErrorBody struct {
	Error   string         `json:"error"`
	Message string         `json:"message,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Policy  string         `json:"policy,omitempty"`
	Rule    string         `json:"rule,omitempty"`
	Errors  []LocatedError `json:"errors,omitempty"`
	// TraceID and DecisionID name a refusal the engine decided and
	// recorded (a refused POST /v1/delegations), as a deny body does.
	TraceID    string `json:"trace_id,omitempty"`
	DecisionID string `json:"decision_id,omitempty"`
}

// LocatedError is one problem in a policy or tests file: where it is and
// what was expected.
type LocatedError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String renders e as the CLI prints it: file:line: field: message.
func (e LocatedError) String() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// --- Agents --------------------------------------------------------------

// CreateAgentRequest is the body of POST /admin/agents.
type CreateAgentRequest struct {
	Name string `json:"name"`
	// TrustTier is a tier name; empty means untrusted, the lowest.
	TrustTier string   `json:"trustTier,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Hosts     []string `json:"hosts,omitempty"`
	// SPIFFEIDs are the mesh identities (spiffe://…) that are this agent.
	SPIFFEIDs []string          `json:"spiffeIds,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	// TTL is the first token's lifetime; zero means the server's default.
	TTL Duration `json:"ttl,omitempty"`
}

// AgentWithToken is the answer to POST /admin/agents: the agent as stored
// and its first token.
type AgentWithToken struct {
	Agent
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// AgentPatch is the body of PATCH /admin/agents/{id}: only the fields given
// change. Tags, Hosts, SPIFFEIDs and Metadata are replaced whole; an empty
// list or object clears them.
type AgentPatch struct {
	Name      *string            `json:"name,omitempty"`
	TrustTier *string            `json:"trustTier,omitempty"`
	Tags      *[]string          `json:"tags,omitempty"`
	Hosts     *[]string          `json:"hosts,omitempty"`
	SPIFFEIDs *[]string          `json:"spiffeIds,omitempty"`
	Metadata  *map[string]string `json:"metadata,omitempty"`
}

// AgentList is the answer to GET /admin/agents, in name order. Next, when
// set, is the After of the next page.
type AgentList struct {
	Agents []Agent `json:"agents"`
	Next   string  `json:"next,omitempty"`
}

// TokenRequest is the (optional) body of POST /admin/agents/{id}/token.
type TokenRequest struct {
	TTL Duration `json:"ttl,omitempty"`
}

// Token is a newly issued agent token.
type Token struct {
	AgentID   string    `json:"agentId"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// RevokeTokenRequest is the body of POST /admin/tokens/revoke: the token
// itself, or its jti and its agent's id (not both), and an optional reason.
type RevokeTokenRequest struct {
	Token   string `json:"token,omitempty"`
	JTI     string `json:"jti,omitempty"`
	AgentID string `json:"agentId,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// RevokedToken is the answer to POST /admin/tokens/revoke: the
// revocation as stored, and whether this call made it (false: the token
// was revoked already).
type RevokedToken struct {
	Revocation
	Created bool `json:"created"`
}

// RevokedTokenList is a page of GET /admin/tokens/revoked.
type RevokedTokenList struct {
	Tokens []Revocation `json:"tokens"`
	Next   string       `json:"next,omitempty"`
}

// --- Policies ------------------------------------------------------------

// Policy sources.
const (
	SourceFile   = "file"   // a file under POLICIES_DIR
	SourceStored = "stored" // applied through the admin API
)

// PolicyInfo summarises one policy.
type PolicyInfo struct {
	Name        string `json:"name"`
	Version     string `json:"version,omitempty"`
	Description string `json:"description,omitempty"`
	Rules       int    `json:"rules"`
	// Source is SourceFile or SourceStored.
	Source string `json:"source"`
	// File and Line locate the policy: its file, or "stored:NAME".
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
}

// PolicyList is the answer to GET /admin/policies: the policies in force,
// in name order, with the set's revision. LoadErrors, when present, are the
// errors of the last reload: the set listed is the last good one.
type PolicyList struct {
	Revision   string         `json:"revision"`
	Policies   []PolicyInfo   `json:"policies"`
	LoadErrors []LocatedError `json:"loadErrors,omitempty"`
}

// PolicyDetail is the answer to GET /admin/policies/{name}. Policy is the
// policy in JSON, with the YAML keys (so it is itself valid policy YAML);
// YAML is the applied document of a stored policy, verbatim.
type PolicyDetail struct {
	PolicyInfo
	// InForce is false for a stored policy that the last reload could not
	// put in force.
	InForce   bool            `json:"inForce"`
	Policy    json.RawMessage `json:"policy,omitempty"`
	YAML      string          `json:"yaml,omitempty"`
	CreatedAt *time.Time      `json:"createdAt,omitempty"`
	UpdatedAt *time.Time      `json:"updatedAt,omitempty"`
}

// PolicyFile is one YAML file of policies. Name is only used to locate
// errors ("policies/support.yaml:4: rules[0].effect: …").
type PolicyFile struct {
	Name string `json:"name"`
	YAML string `json:"yaml"`
}

// ApplyRequest is the JSON form of POST /admin/policies and
// /admin/policies/validate: several files applied as one change.
type ApplyRequest struct {
	Files []PolicyFile `json:"files"`
}

// AppliedPolicy is one policy stored by an apply.
type AppliedPolicy struct {
	Name    string `json:"name"`
	Created bool   `json:"created"` // false: it replaced a stored policy
	Rules   int    `json:"rules"`
}

// ApplyResult is the answer to POST /admin/policies.
type ApplyResult struct {
	Applied []AppliedPolicy `json:"applied"`
	// Revision is the revision of the set in force after the apply.
	Revision string `json:"revision"`
	// InForce is false when the policies were stored but the reload that
	// follows failed (Errors says why; the previous set stays in force).
	InForce bool           `json:"inForce"`
	Errors  []LocatedError `json:"errors,omitempty"`
}

// ValidateResult is the answer to POST /admin/policies/validate. Policies
// are those of the request.
type ValidateResult struct {
	Valid    bool           `json:"valid"`
	Errors   []LocatedError `json:"errors"`
	Policies []PolicyInfo   `json:"policies"`
}

// DeleteResult is the answer to DELETE /admin/policies/{name}.
type DeleteResult struct {
	Deleted  string         `json:"deleted"`
	Revision string         `json:"revision"`
	InForce  bool           `json:"inForce"`
	Errors   []LocatedError `json:"errors,omitempty"`
}

// PolicyTestRequest is the body of POST /admin/policies/test: either one
// case (Agent, Action, …) evaluated against the agents in the store and the
// policies in force, or Tests, the content of a tests file (docs/cli.md).
type PolicyTestRequest struct {
	Agent    string         `json:"agent,omitempty"` // id or name
	Action   string         `json:"action,omitempty"`
	Resource string         `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
	// Chain lists the agents that delegated, root first (ids or names).
	Chain []string `json:"chain,omitempty"`
	// At is the time for time conditions (default: now).
	At      *time.Time `json:"at,omitempty"`
	Verbose bool       `json:"verbose,omitempty"`
	Tests   string     `json:"tests,omitempty"`
}

// PolicyTestResult is the answer for one case: the policy decision
// (decision, reason, message, policy, rule, trustTier, policyRevision, and
// explain when verbose).
type PolicyTestResult struct {
	Agent    string   `json:"agent"`
	Action   string   `json:"action"`
	Resource string   `json:"resource"`
	Chain    []string `json:"chain,omitempty"`
	Allowed  bool     `json:"allowed"`
	PolicyDecision
}

// TestReport is the answer for a tests file: the {summary, results} of
// docs/cli.md, each result with the whole decision when verbose.
type TestReport struct {
	Summary TestSummary  `json:"summary"`
	Results []TestResult `json:"results"`
}

// TestResult is one case of a TestReport.
type TestResult struct {
	TestCaseResult
	Detail *PolicyDecision `json:"detail,omitempty"`
}

// --- Keys ----------------------------------------------------------------

// RotateKeyRequest is the (optional) body of POST /admin/keys/rotate. Alg
// defaults to the current key's algorithm.
type RotateKeyRequest struct {
	Alg string `json:"alg,omitempty"`
}

// RotatedKey is the new current signing key.
type RotatedKey struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
}

// --- Agents' endpoints ---------------------------------------------------

// CheckRequest is the body of POST /v1/check. Delegation and TraceParent
// travel as the X-MeshGuard-Delegation and traceparent headers.
type CheckRequest struct {
	Action   string         `json:"action"`
	Resource string         `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`

	Delegation  string `json:"-"`
	TraceParent string `json:"-"`
}

// Decision is the answer of POST /v1/check, allowed or denied. A denial
// also carries the deny body's fields (Error, DenyTraceID, DenyRetryAfter).
type Decision struct {
	Decision string `json:"decision"` // allow or deny
	// Allowed is what is enforced: in audit mode a deny is still allowed.
	Allowed        bool     `json:"allowed"`
	Status         int      `json:"status"`
	Reason         string   `json:"reason"`
	Message        string   `json:"message,omitempty"`
	Policy         string   `json:"policy,omitempty"`
	Rule           string   `json:"rule,omitempty"`
	DecisionID     string   `json:"decisionId"`
	TraceID        string   `json:"traceId"`
	AgentID        string   `json:"agentId,omitempty"`
	AgentName      string   `json:"agentName,omitempty"`
	TrustTier      string   `json:"trustTier,omitempty"`
	Action         string   `json:"action,omitempty"`
	Resource       string   `json:"resource,omitempty"`
	Chain          []string `json:"chain"`
	PolicyRevision string   `json:"policyRevision,omitempty"`
	Mode           string   `json:"mode"`
	// RetryAfter is in seconds, with status 429.
	RetryAfter int `json:"retryAfter,omitempty"`

	Error          string `json:"error,omitempty"`
	DenyTraceID    string `json:"trace_id,omitempty"`
	DenyRetryAfter int    `json:"retry_after,omitempty"`
	// ApprovalID and ApprovalURL: the human approval a 403 waits on or
	// was refused by, and where to follow it (docs/governance.md).
	ApprovalID  string `json:"approval_id,omitempty"`
	ApprovalURL string `json:"approval_url,omitempty"`
}

// DelegationRequest is the body of POST /v1/delegations. Parent, the
// caller's own delegation token when it acts for a chain, travels as
// X-MeshGuard-Delegation.
type DelegationRequest struct {
	// Delegate is the agent that will act for the caller (id or name).
	Delegate string `json:"delegate"`
	// Actions are the action patterns the delegate may perform (the
	// token's scope): at least one.
	Actions []string `json:"actions"`
	// TTL is the token's lifetime (default 1h); it never outlives the
	// caller's token or the parent delegation.
	TTL Duration `json:"ttl,omitempty"`
	// MaxDepth is how many hand-offs the task may travel from the caller,
	// as a policy's delegation.maxDepth counts them: 1 (the default) lets
	// the delegate act but not hand on; at most 5.
	MaxDepth int `json:"maxDepth,omitempty"`

	Parent string `json:"-"`
}

// DelegationToken is the answer to POST /v1/delegations.
type DelegationToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Chain lists agent ids from the root to the delegate.
	Chain []string `json:"chain"`
	Scope []string `json:"scope"`
	// MaxChain caps the delegating agents the chain may grow to.
	MaxChain int `json:"maxChain"`
}

// --- Public endpoints ----------------------------------------------------

// ReadyStatus is the answer of GET /ready: "ready", or "not_ready" with
// the errors (the policy loader's last error among them).
type ReadyStatus struct {
	Status         string   `json:"status"`
	PolicyRevision string   `json:"policyRevision,omitempty"`
	Errors         []string `json:"errors,omitempty"`
}

// String is for messages.
func (r ReadyStatus) String() string {
	if len(r.Errors) == 0 {
		return r.Status
	}
	return fmt.Sprintf("%s: %v", r.Status, r.Errors)
}

// AlertsStatus is GET /admin/alerts: how alerting is configured and what
// waits in the outbox.
type AlertsStatus struct {
	Triggers    []string        `json:"triggers"`
	Providers   []AlertProvider `json:"providers"`
	RateLimit   int             `json:"rateLimit"`
	Instance    string          `json:"instance,omitempty"`
	Environment string          `json:"environment,omitempty"`
	// Pending counts undelivered alerts per provider.
	Pending map[string]int `json:"pending"`
}

// AlertProvider is one configured provider; Target says where it sends
// without any secret (a URL's host, the recipients).
type AlertProvider struct {
	Name   string `json:"name"`
	Target string `json:"target"`
}

// AlertTestResult is one provider's answer to POST /admin/alerts/test.
type AlertTestResult struct {
	Provider  string `json:"provider"`
	Delivered bool   `json:"delivered"`
	Error     string `json:"error,omitempty"`
}
