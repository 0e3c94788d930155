// Package client is a typed Go client of MeshGuard's HTTP API (docs/api.md):
// the admin API, POST /v1/check, POST /v1/delegations and the public
// endpoints. The CLI uses it for its online commands. Its request and
// response types are those of package api, which the server (package
// admin) decodes and encodes; client depends on nothing heavier
// (deps_test.go holds that).
//
// Errors are typed so callers can branch on them: a response with an error
// status is an *APIError; a failure to reach the server or read its answer
// wraps ErrNetwork; ExitCode maps both to the CLI's exit codes.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
)

// DefaultBaseURL is MeshGuard's address when none is configured (docs/cli.md,
// MESHGUARD_GATEWAY_URL).
const DefaultBaseURL = "http://127.0.0.1:3100"

// DefaultTimeout bounds one request, from dialling to the last byte of the
// answer.
const DefaultTimeout = 30 * time.Second

// MaxResponseBytes bounds an answer the client reads (a policy list holds
// every policy's summary; a stored policy is at most 4 MiB).
const MaxResponseBytes = 64 << 20

// ErrNetwork is wrapped by every failure to reach the server or to read its
// answer: connection refused, DNS, TLS, timeouts, a cut-off body.
var ErrNetwork = errors.New("meshguard: network error")

// APIError is an answer with an error status. Code is the body's "error"
// (bad_request, unauthorized, forbidden, not_found, conflict, …); Reason the
// decision's reason code for denials; Errors the located errors of a policy
// load. Decision is set for denials of /v1/check.
type APIError struct {
	Status   int
	Code     string
	Message  string
	Reason   string
	Policy   string
	Rule     string
	Errors   []api.LocatedError
	Decision *api.Decision
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "meshguard: %d %s", e.Status, e.Code)
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Reason != "" && e.Reason != e.Code {
		b.WriteString(" (" + e.Reason + ")")
	}
	for _, le := range e.Errors {
		b.WriteString("\n  " + le.String())
	}
	return b.String()
}

// Exit codes of the CLI (docs/cli.md).
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
	ExitAuth    = 3
	ExitDenied  = 4
	ExitNetwork = 5
)

// ExitCode maps an error from this package to the CLI's exit codes: nil 0;
// network failures 5; 401, and the admin API's refusal of agent tokens, 3;
// other 403s (policy denials) and 429 4; 400, 413 and 415 (bad input) 2;
// anything else 1.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, ErrNetwork) {
		return ExitNetwork
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return ExitFailure
	}
	switch ae.Status {
	case http.StatusUnauthorized:
		return ExitAuth
	case http.StatusForbidden:
		if ae.Reason == api.ReasonAdminTokenRequired {
			return ExitAuth
		}
		return ExitDenied
	case http.StatusTooManyRequests:
		return ExitDenied
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return ExitUsage
	}
	return ExitFailure
}

// Config configures a Client.
type Config struct {
	// BaseURL is MeshGuard's HTTP address (DefaultBaseURL if empty),
	// optionally with a path prefix.
	BaseURL string
	// AdminToken is sent as X-Admin-Token to /admin/* endpoints.
	AdminToken string
	// AgentToken is sent as Authorization: Bearer to /v1/* endpoints.
	AgentToken string
	// HTTPClient, if set, is used as is; otherwise the client builds one
	// with Timeout and bounded dial, TLS and header timeouts.
	HTTPClient *http.Client
	// Timeout bounds each request (DefaultTimeout if zero).
	Timeout time.Duration
	// UserAgent is sent with every request ("meshguard-client" if empty).
	UserAgent string
}

// Client calls one MeshGuard server. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	adminToken string
	agentToken string
	hc         *http.Client
	ua         string
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	raw := cfg.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("meshguard client: base URL %q: expected http(s)://host[:port][/prefix] without query, fragment or credentials", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("meshguard client: timeout %v: must not be negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		hc = &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           dialer.DialContext,
				TLSHandshakeTimeout:   5 * time.Second,
				ResponseHeaderTimeout: cfg.Timeout,
				IdleConnTimeout:       90 * time.Second,
				MaxIdleConnsPerHost:   4,
				ForceAttemptHTTP2:     true,
			},
			// Never follow a redirect: it would resend the admin token to
			// wherever the Location points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "meshguard-client"
	}
	return &Client{base: u, adminToken: cfg.AdminToken, agentToken: cfg.AgentToken, hc: hc, ua: ua}, nil
}

// WithAgentToken returns a copy of c that sends token to /v1/* endpoints.
func (c *Client) WithAgentToken(token string) *Client {
	cp := *c
	cp.agentToken = token
	return &cp
}

// WithAdminToken returns a copy of c that sends token to /admin/* endpoints.
func (c *Client) WithAdminToken(token string) *Client {
	cp := *c
	cp.adminToken = token
	return &cp
}

// auth says which credential a request carries.
type auth int

const (
	authNone auth = iota
	authAdmin
	authAgent
)

// call is one request.
type call struct {
	method, path string
	query        url.Values
	auth         auth
	body         []byte
	contentType  string
	header       http.Header
	// out is the JSON target of a success; a *[]byte takes the raw body,
	// of errors too.
	out any
	// streamTo, if set, reads a success's body instead of out (stream).
	streamTo func(io.Reader) error
}

// stream runs k and hands a success's body to read as it arrives, with no
// size or time limit but ctx's; an error status is an *APIError as usual.
func (c *Client) stream(ctx context.Context, k call, read func(io.Reader) error) error {
	k.streamTo = read
	_, err := c.do(ctx, k)
	return err
}

// do runs the call and decodes the answer into c.out, or returns an
// *APIError for an error status.
func (c *Client) do(ctx context.Context, k call) (http.Header, error) {
	// k.path holds escaped segments: keep them escaped on the wire.
	u := *c.base
	u.RawPath = c.base.EscapedPath() + k.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("meshguard client: %s %s: %w", k.method, k.path, err)
	}
	u.Path = p
	if len(k.query) > 0 {
		u.RawQuery = k.query.Encode()
	}
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("meshguard client: %s %s: %w", k.method, k.path, err)
	}
	for name, vs := range k.header {
		for _, v := range vs {
			req.Header.Add(name, v)
		}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if k.body != nil {
		req.Header.Set("Content-Type", k.contentType)
	}
	switch k.auth {
	case authAdmin:
		if c.adminToken != "" {
			req.Header.Set(api.HeaderAdminToken, c.adminToken)
		}
	case authAgent:
		if c.agentToken != "" {
			req.Header.Set("Authorization", "Bearer "+c.agentToken)
		}
	}
	hc := c.hc
	if k.streamTo != nil {
		// The client's Timeout covers reading the body; a stream's is ctx.
		nc := *c.hc
		nc.Timeout = 0
		hc = &nc
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(ctxErr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("meshguard client: %s %s: %w", k.method, k.path, ctxErr)
		}
		return nil, fmt.Errorf("%w: %s %s: %w", ErrNetwork, k.method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	if k.streamTo != nil && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if err := k.streamTo(resp.Body); err != nil {
			if ctx.Err() != nil {
				return resp.Header, fmt.Errorf("meshguard client: %s %s: %w", k.method, k.path, ctx.Err())
			}
			return resp.Header, fmt.Errorf("%w: %s %s: reading the stream: %w", ErrNetwork, k.method, k.path, err)
		}
		return resp.Header, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: reading the answer: %w", ErrNetwork, k.method, k.path, err)
	}
	if len(data) > MaxResponseBytes {
		return nil, fmt.Errorf("meshguard client: %s %s: the answer is larger than %d bytes", k.method, k.path, MaxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if raw, ok := k.out.(*[]byte); ok {
			*raw = data
		}
		return resp.Header, apiError(resp, data)
	}
	switch out := k.out.(type) {
	case nil:
	case *[]byte:
		*out = data
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("meshguard client: %s %s: decoding the answer: %w", k.method, k.path, err)
		}
	}
	return resp.Header, nil
}

// apiError builds the error of an error status from its body, JSON or not
// (a proxy in between may answer in text).
func apiError(resp *http.Response, data []byte) *APIError {
	e := &APIError{Status: resp.StatusCode}
	var body api.ErrorBody
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Code, e.Message, e.Reason, e.Policy, e.Rule, e.Errors = body.Error, body.Message, body.Reason, body.Policy, body.Rule, body.Errors
		return e
	}
	e.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	}
	e.Message = strings.TrimSpace(truncate(string(data), 512))
	return e
}

func (c *Client) jsonCall(method, path string, a auth, in, out any) (call, error) {
	k := call{method: method, path: path, auth: a, out: out}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return call{}, fmt.Errorf("meshguard client: encoding the request: %w", err)
		}
		k.body, k.contentType = b, "application/json"
	}
	return k, nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, a auth, in, out any) error {
	k, err := c.jsonCall(method, path, a, in, out)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, k)
	return err
}

// seg escapes one path segment (an id or name from the command line).
func seg(s string) string { return url.PathEscape(s) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// AgentFilter selects agents for ListAgents; zero fields do not filter.
type AgentFilter struct {
	Trust  string // a tier name
	Status string // active or revoked
	Tag    string
	After  string // the name after which the page starts (api.AgentList.Next)
	Limit  int    // page size; 0 means the server's default (100), at most 1000
}
