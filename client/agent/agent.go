package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
)

// Defaults of the options.
const (
	DefaultTimeout = 5 * time.Second // as the Python and TypeScript SDKs
	// DefaultRetries is how many times a call is retried when that is safe.
	DefaultRetries = 2
	// DefaultMaxRetryWait bounds one wait before a retry: a Retry-After
	// longer than this is returned to the caller instead of slept through.
	DefaultMaxRetryWait = 5 * time.Second
	// MaxAnswerBytes bounds an answer the SDK reads (a decision is a few
	// hundred bytes).
	MaxAnswerBytes = 1 << 20
	// MaxRetries bounds WithRetries.
	MaxRetries = 10
)

// Agent calls MeshGuard as one agent (optionally acting for a delegation
// chain). It is safe for concurrent use; ActingFor returns a copy.
type Agent struct {
	base       *url.URL
	token      string
	delegation string
	hc         *http.Client
	retries    int
	maxWait    time.Duration
	// meshHosts are the host:port pairs whose requests Transport gives the
	// agent's headers: MeshGuard's (its gateway) and WithMeshHosts'.
	meshHosts map[string]bool
}

// Option configures New.
type Option func(*Agent) error

// WithHTTPClient makes the SDK call MeshGuard through hc, used as is (its
// timeout and redirect policy are the caller's: following a redirect would
// carry the token elsewhere, so keep CheckRedirect refusing them).
func WithHTTPClient(hc *http.Client) Option {
	return func(a *Agent) error {
		if hc == nil {
			return errors.New("meshguard agent: WithHTTPClient(nil)")
		}
		a.hc = hc
		return nil
	}
}

// WithTimeout bounds each request to MeshGuard (DefaultTimeout otherwise).
// It applies to the HTTP client the SDK builds, not to one of
// WithHTTPClient.
func WithTimeout(d time.Duration) Option {
	return func(a *Agent) error {
		if d <= 0 {
			return fmt.Errorf("meshguard agent: timeout %v: must be positive", d)
		}
		a.hc.Timeout = d
		return nil
	}
}

// WithRetries sets how many times a call is retried when that is safe (0
// to 10) and the longest wait before one.
func WithRetries(n int, maxWait time.Duration) Option {
	return func(a *Agent) error {
		if n < 0 || n > MaxRetries || maxWait < 0 {
			return fmt.Errorf("meshguard agent: retries %d, wait %v: want 0 to %d retries and a wait of at least 0", n, maxWait, MaxRetries)
		}
		a.retries, a.maxWait = n, maxWait
		return nil
	}
}

// WithMeshHosts names the hosts ("host:port", or a URL) besides
// MeshGuard's own (its gateway, /proxy/…) whose requests Transport and
// HTTPClient give the agent's headers: services behind Envoy's ext_authz.
// A request to any other host leaves without them, so an agent fetching a
// URL it was handed (by a model, a document, a redirect) cannot send its
// token there.
func WithMeshHosts(hosts ...string) Option {
	return func(a *Agent) error {
		for _, h := range hosts {
			hp, err := hostPort(h)
			if err != nil {
				return err
			}
			a.meshHosts[hp] = true
		}
		return nil
	}
}

// hostPort is the canonical host:port of "host[:port]" or a URL.
func hostPort(s string) (string, error) {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "http://" + s
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("meshguard agent: mesh host %q: expected host[:port] or an http(s) URL", truncate(s, 64))
	}
	return urlHostPort(u), nil
}

func urlHostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// New returns an Agent that calls MeshGuard at baseURL (http(s)://host[:port][/prefix])
// with the agent's token.
func New(baseURL, token string, opts ...Option) (*Agent, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("meshguard agent: base URL %s: expected http(s)://host[:port][/prefix] without query, fragment or credentials", shownURL(u, baseURL))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if err := checkToken("agent token", token); err != nil {
		return nil, err
	}
	a := &Agent{base: u, token: token, hc: defaultHTTPClient(), retries: DefaultRetries, maxWait: DefaultMaxRetryWait,
		meshHosts: map[string]bool{urlHostPort(u): true}}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// shownURL is how an error names a refused base URL: without its password.
// One that did not parse (u is nil; "127.0.0.1:3100" has no scheme) is shown
// as given, unless an '@' may mean it holds credentials.
func shownURL(u *url.URL, raw string) string {
	switch {
	case u != nil:
		return strconv.Quote(u.Redacted())
	case strings.Contains(raw, "@"):
		return "(not shown: it may hold credentials)"
	default:
		return strconv.Quote(raw)
	}
}

func defaultHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: DefaultTimeout,
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, DialContext: dialer.DialContext,
			TLSHandshakeTimeout: 5 * time.Second, IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 8,
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: refuseRedirects,
	}
}

// refuseRedirects: a redirect would resend the token to wherever Location
// points.
func refuseRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// checkToken refuses a token that cannot travel in a header: empty, or
// with characters outside visible ASCII. The message never quotes it.
func checkToken(what, tok string) error {
	if tok == "" {
		return fmt.Errorf("meshguard agent: the %s is empty", what)
	}
	if len(tok) > 16<<10 {
		return fmt.Errorf("meshguard agent: the %s is longer than 16 KiB", what)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return fmt.Errorf("meshguard agent: the %s holds a character at byte %d that is not visible ASCII", what, i)
		}
	}
	return nil
}

// ActingFor returns a copy of a that acts for the delegation chain whose
// token is delegationToken (what the delegator's Delegate returned, or what
// arrived in the X-MeshGuard-Delegation header of the request being
// served): its checks, delegations and outgoing requests carry it. An empty
// token returns a copy acting for no chain.
func (a *Agent) ActingFor(delegationToken string) (*Agent, error) {
	if delegationToken != "" {
		if err := checkToken("delegation token", delegationToken); err != nil {
			return nil, err
		}
	}
	cp := *a
	cp.delegation = delegationToken
	return &cp, nil
}

// Check asks MeshGuard whether the agent may do action on resource, with
// reqContext for the policies' context conditions (nil for none). A denial is a decision,
// returned with a nil error; an error means MeshGuard refused to decide
// (unauthorized, rate limited, bad request) or could not be asked
// (unavailable) — never an allow.
//
// With PreferWait, a request that needs a person's approval is held by
// MeshGuard until the approval is decided (or the wait ends), and the
// answer is the final decision.
func (a *Agent) Check(ctx context.Context, action, resource string, reqContext map[string]any, opts ...CheckOption) (api.Decision, error) {
	var o checkOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return api.Decision{}, &Error{Kind: KindBadRequest, Op: "check", Message: o.err.Error()}
	}
	body, err := json.Marshal(api.CheckRequest{Action: action, Resource: resource, Context: reqContext})
	if err != nil {
		return api.Decision{}, &Error{Kind: KindBadRequest, Op: "check", Message: "encoding the request", Err: err}
	}
	status, hdr, data, trace, err := a.send(ctx, request{op: "check", method: http.MethodPost, path: "/v1/check", body: body,
		retryAnswers: true, hold: o.wait, prefer: o.wait > 0})
	if err != nil {
		return api.Decision{}, err
	}
	d, derr := decodeDecision(data)
	switch {
	case status == http.StatusOK && derr == nil:
		return d, nil
	case status == http.StatusForbidden && derr == nil && !d.Allowed:
		return d, nil
	case status == http.StatusOK || status == http.StatusForbidden:
		if derr == nil {
			derr = fmt.Errorf("status %d with a decision that says allowed=%t", status, d.Allowed)
		}
		return api.Decision{}, &Error{Kind: KindUnavailable, Op: "check", Status: status, Message: "the answer is not a decision", Err: derr, TraceID: trace}
	}
	return api.Decision{}, a.answerError("check", status, hdr, data, trace)
}

// Require is Check with a denial as an error: it returns the decision when
// the action is allowed, and an *Error of kind denied (errors.Is(err,
// ErrDenied)) carrying the decision when it is not.
//
// A request that needs a person's approval is an error that
// errors.Is(err, ErrApprovalRequired), naming the approval (ApprovalID):
// wait on it with WaitForApproval and Require again. With
// WaitingForApproval(d), Require does that itself, once.
func (a *Agent) Require(ctx context.Context, action, resource string, reqContext map[string]any, opts ...CheckOption) (api.Decision, error) {
	var o checkOptions
	for _, opt := range opts {
		opt(&o)
	}
	d, err := a.require(ctx, action, resource, reqContext, opts)
	if o.approvalWait <= 0 || !errors.Is(err, ErrApprovalRequired) {
		return d, err
	}
	var e *Error
	if !errors.As(err, &e) || e.ApprovalID == "" {
		return d, err
	}
	wctx, cancel := context.WithTimeout(ctx, o.approvalWait)
	defer cancel()
	if _, err := a.WaitForApproval(wctx, e.ApprovalID); err != nil {
		return api.Decision{}, err
	}
	return a.require(ctx, action, resource, reqContext, opts)
}

func (a *Agent) require(ctx context.Context, action, resource string, reqContext map[string]any, opts []CheckOption) (api.Decision, error) {
	d, err := a.Check(ctx, action, resource, reqContext, opts...)
	if err != nil {
		return d, err
	}
	if !d.Allowed {
		return d, &Error{Kind: KindDenied, Op: "check", Status: d.Status, Reason: a.scrub(d.Reason), Message: a.scrub(d.Message),
			TraceID: validTraceID(traceOf(d)), DecisionID: a.scrub(d.DecisionID), Decision: &d,
			ApprovalID: a.scrub(d.ApprovalID), ApprovalURL: a.scrub(d.ApprovalURL)}
	}
	return d, nil
}

// Delegate mints a delegation that lets the agent named to act for this
// one (and, acting for a chain, for the chain) on actions, for at most
// maxDepth further hand-offs (0: the server's default, 1) and ttl (0: the
// server's default, 1h). Hand the returned token to the delegate, which
// sends it with ActingFor. A refusal is an *Error of kind denied.
func (a *Agent) Delegate(ctx context.Context, to string, actions []string, maxDepth int, ttl time.Duration) (api.DelegationToken, error) {
	body, err := json.Marshal(api.DelegationRequest{Delegate: to, Actions: actions, MaxDepth: maxDepth, TTL: api.Duration(ttl)})
	if err != nil {
		return api.DelegationToken{}, &Error{Kind: KindBadRequest, Op: "delegate", Message: "encoding the request", Err: err}
	}
	// Not retried after an answer: a proxy's 503 (or 429) may follow a
	// mint, and a second attempt would mint twice.
	status, hdr, data, trace, err := a.send(ctx, request{op: "delegate", method: http.MethodPost, path: "/v1/delegations", body: body})
	if err != nil {
		return api.DelegationToken{}, err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return api.DelegationToken{}, a.answerError("delegate", status, hdr, data, trace)
	}
	var tok api.DelegationToken
	if err := unmarshalStrict(data, &tok); err != nil || tok.Token == "" || len(tok.Chain) == 0 {
		if err == nil {
			err = errors.New("no token or no chain")
		}
		return api.DelegationToken{}, &Error{Kind: KindUnavailable, Op: "delegate", Status: status, Message: "the answer is not a delegation", Err: err, TraceID: trace}
	}
	return tok, nil
}

// decodeDecision reads a decision, refusing anything that is not one.
func decodeDecision(data []byte) (api.Decision, error) {
	var d api.Decision
	if err := unmarshalStrict(data, &d); err != nil {
		return api.Decision{}, fmt.Errorf("decoding the decision: %w", err)
	}
	switch {
	case d.Decision != "allow" && d.Decision != "deny":
		return api.Decision{}, fmt.Errorf("decision %q: want allow or deny", truncate(d.Decision, 64))
	case d.Allowed && d.Decision == "deny" && d.Mode != "audit":
		return api.Decision{}, errors.New("a deny that says allowed outside audit mode")
	case !d.Allowed && d.Decision == "allow":
		return api.Decision{}, errors.New("an allow that says not allowed")
	case d.Decision == "allow" && d.Status != 0 && d.Status != http.StatusOK:
		return api.Decision{}, fmt.Errorf("an allow with status %d in its body", d.Status)
	}
	return d, nil
}

// answerError is the *Error of an error status, filled from the body when
// it is MeshGuard's (a deny body or an error body). sentTrace, the trace
// of the traceparent the SDK sent, names the trace when the answer does not
// (a delegation's refusal), so every error can be found in the audit trail.
//
// What the answer says is scrubbed of the agent's tokens (a proxy or
// server echoing them would otherwise put them in the error, and so in a
// log), and a trace id is taken from it only when it is one.
func (a *Agent) answerError(op string, status int, hdr http.Header, data []byte, sentTrace string) *Error {
	return errorFrom(op, status, hdr, data, sentTrace, a.scrub)
}

// errorFrom is answerError with the scrubbing of what the answer says
// given (DenialFrom has no agent's tokens to scrub).
func errorFrom(op string, status int, hdr http.Header, data []byte, sentTrace string, scrub func(string) string) *Error {
	e := &Error{Kind: kindOf(status), Op: op, Status: status, TraceID: firstOf(validTraceID(hdr.Get("X-MeshGuard-Trace-Id")), sentTrace)}
	e.RetryAfter, _ = retryAfter(hdr, data)
	var body struct {
		api.ErrorBody
		DecisionID  string `json:"decisionId"`
		TraceID     string `json:"traceId"`
		DenyTrace   string `json:"trace_id"`
		ApprovalID  string `json:"approval_id"`
		ApprovalURL string `json:"approval_url"`
		Action      string `json:"action"`
	}
	e.ApprovalID = scrub(hdr.Get(HeaderApproval))
	if json.Unmarshal(data, &body) == nil {
		e.Reason, e.Message, e.DecisionID = scrub(body.Reason), scrub(body.Message), scrub(body.DecisionID)
		e.ApprovalID, e.ApprovalURL = firstOf(e.ApprovalID, scrub(body.ApprovalID)), scrub(body.ApprovalURL)
		e.Action = scrub(body.Action)
		e.TraceID = firstOf(validTraceID(body.TraceID), validTraceID(body.DenyTrace), e.TraceID)
		if d, err := decodeDecision(data); err == nil {
			e.Decision = &d
		}
	} else {
		e.Message = fmt.Sprintf("%d bytes that are not MeshGuard's JSON", len(data))
	}
	return e
}

func traceOf(d api.Decision) string { return firstOf(d.TraceID, d.DenyTraceID) }

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// retryAfter reads the Retry-After header (seconds or an HTTP date), or
// the body's retry_after/retryAfter; ok is false when the answer names no
// wait at all (a zero wait is named: "0", or a date gone by).
func retryAfter(hdr http.Header, data []byte) (wait time.Duration, ok bool) {
	if v := strings.TrimSpace(hdr.Get("Retry-After")); v != "" {
		if strings.Trim(v, "0123456789") == "" {
			// Digits past any sane wait (or past int64) are the longest
			// wait, not an overflow into a negative one retried at once.
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n > maxRetryAfterSeconds {
				n = maxRetryAfterSeconds
			}
			return time.Duration(n) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return min(max(time.Until(t), 0), maxRetryAfterSeconds*time.Second), true
		}
	}
	var body struct {
		A *float64 `json:"retry_after"`
		B *float64 `json:"retryAfter"`
	}
	if json.Unmarshal(data, &body) != nil {
		return 0, false
	}
	for _, v := range []*float64{body.B, body.A} {
		if v != nil && *v >= 0 {
			return time.Duration(math.Ceil(min(*v, maxRetryAfterSeconds))) * time.Second, true
		}
	}
	return 0, false
}

// maxRetryAfterSeconds bounds the wait an answer can ask for (a day).
const maxRetryAfterSeconds = 24 * 60 * 60

// traceID is the trace id of a traceparent the SDK made.
func traceID(traceparent string) string {
	if len(traceparent) == 55 {
		return traceparent[3:35]
	}
	return ""
}

// String names the agent's MeshGuard and whether it acts for a chain,
// never its tokens: fmt would otherwise print the unexported fields (%v,
// %+v), and an Agent in a log line would carry the token.
func (a Agent) String() string {
	return fmt.Sprintf("meshguard agent for %s (acting for a chain: %t)", a.base.Redacted(), a.delegation != "")
}

// GoString is String for %#v.
func (a Agent) GoString() string { return a.String() }

// LogValue is String for log/slog, whose handlers read no Stringer.
func (a Agent) LogValue() slog.Value { return slog.StringValue(a.String()) }

// scrub replaces the agent's tokens in s, text an answer sent.
func (a *Agent) scrub(s string) string {
	s = strings.ReplaceAll(s, a.token, "[token]")
	if a.delegation != "" {
		s = strings.ReplaceAll(s, a.delegation, "[delegation]")
	}
	return s
}

// validTraceID is id when it is a W3C trace id (32 lower-case hex digits,
// not all zero), else "".
func validTraceID(id string) string {
	if len(id) != 32 || strings.Trim(id, "0") == "" {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return id
}
