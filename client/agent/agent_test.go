package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/client/agent"
)

const secretToken = "eyJ.secret-agent-token.sig"

// answering is a loopback server giving every request the same answer and
// counting them.
func answering(t *testing.T, status int, header map[string]string, body string) (url string, hits *atomic.Int32) {
	t.Helper()
	hits = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

// TestFailsClosed: every answer that is not a readable decision is an
// error of a specific kind, never an allow, and names no token.
func TestFailsClosed(t *testing.T) {
	allowBody := `{"decision":"allow","allowed":true,"status":200,"reason":"rule_allow","chain":[],"mode":"enforce"}`
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		kind   agent.Kind
		reason string
	}{
		{"500", 500, nil, `{"error":"internal"}`, agent.KindUnavailable, ""},
		{"502 from a proxy, in text", 502, nil, "bad gateway", agent.KindUnavailable, ""},
		{"200 that is no decision", 200, nil, `{"ok":true}`, agent.KindUnavailable, ""},
		{"200 that is not JSON", 200, nil, `<html>`, agent.KindUnavailable, ""},
		{"200 with a deny that says allowed", 200, nil, `{"decision":"deny","allowed":true,"mode":"enforce"}`, agent.KindUnavailable, ""},
		{"403 whose decision says allowed", 403, nil, allowBody, agent.KindUnavailable, ""},
		{"403 that is no decision", 403, nil, `{"error":"forbidden"}`, agent.KindUnavailable, ""},
		{"a redirect is not followed", 307, map[string]string{"Location": "http://127.0.0.1:1/elsewhere"}, "", agent.KindUnavailable, ""},
		{"401", 401, nil, `{"decision":"deny","allowed":false,"status":401,"reason":"agent_revoked","error":"unauthorized","trace_id":"abc"}`, agent.KindUnauthorized, "agent_revoked"},
		{"429 beyond the retry bound", 429, map[string]string{"Retry-After": "30"}, `{"decision":"deny","allowed":false,"status":429,"reason":"rate_limited","error":"rate_limited"}`, agent.KindRateLimited, "rate_limited"},
		{"400", 400, nil, `{"error":"bad_request","message":"action: expected verb:resource"}`, agent.KindBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, _ := answering(t, tc.status, tc.header, tc.body)
			a, err := agent.New(url, secretToken)
			if err != nil {
				t.Fatal(err)
			}
			for _, call := range []string{"check", "require"} {
				call := map[string]func(context.Context, string, string, map[string]any) (any, error){
					"check": func(ctx context.Context, ac, r string, c map[string]any) (any, error) {
						d, err := a.Check(ctx, ac, r, c)
						return d, err
					},
					"require": func(ctx context.Context, ac, r string, c map[string]any) (any, error) {
						d, err := a.Require(ctx, ac, r, c)
						return d, err
					},
				}[call]
				_, err := call(t.Context(), "read:papers", "", nil)
				var e *agent.Error
				if !errors.As(err, &e) || e.Kind != tc.kind {
					t.Fatalf("error %v, want kind %s", err, tc.kind)
				}
				if e.Reason != tc.reason {
					t.Errorf("reason %q, want %q", e.Reason, tc.reason)
				}
				if e.TraceID == "" {
					t.Errorf("error %v names no trace", err)
				}
				if strings.Contains(fmt.Sprintf("%v %+v", err, *e), secretToken) {
					t.Fatal("the token is in the error")
				}
			}
		})
	}
}

// TestRetries: a refused connection, a 503 and a 429 whose Retry-After
// fits the bound are retried, as many times as configured and no more; a
// 500 and a 429 beyond the bound are not retried.
func TestRetries(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header map[string]string
		want   int32
	}{
		{"503 is retried", 503, nil, 3},
		{"429 within the bound is retried", 429, map[string]string{"Retry-After": "0"}, 3},
		{"429 beyond the bound is not", 429, map[string]string{"Retry-After": "60"}, 1},
		{"500 is not", 500, nil, 1},
		{"400 is not", 400, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, hits := answering(t, tc.status, tc.header, `{"error":"x"}`)
			a, err := agent.New(url, secretToken, agent.WithRetries(2, time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Check(t.Context(), "read:papers", "", nil); err == nil {
				t.Fatal("no error")
			}
			if got := hits.Load(); got != tc.want {
				t.Errorf("%d requests, want %d", got, tc.want)
			}
		})
	}
}

// TestRetryHonoursCancellation: a caller's context ends the wait before a
// retry, as unavailable (never an allow) wrapping the context's error.
func TestRetryHonoursCancellation(t *testing.T) {
	answered := make(chan struct{}, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
		answered <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	a, err := agent.New(srv.URL, secretToken, agent.WithRetries(5, 2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	// Cancel once the first answer is sent: the SDK then waits an hour to retry.
	go func() {
		<-answered
		cancel()
	}()
	_, err = a.Check(ctx, "read:papers", "", nil)
	if !errors.Is(err, agent.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want unavailable wrapping context.Canceled", err)
	}
}

// TestNewRefusesBadInput: a base URL or token that cannot be used is
// refused up front, without quoting the token.
func TestNewRefusesBadInput(t *testing.T) {
	// shows: what the error must name (the URL given, so the mistake is
	// plain); hides: what it must not (a password, a token).
	tests := []struct{ name, url, token, shows, hides string }{
		{"no scheme", "127.0.0.1:3100", "t", `"127.0.0.1:3100"`, ""},
		{"a host and no scheme", "meshguard", "t", `"meshguard"`, ""},
		{"credentials in the URL", "http://u:hunter2@127.0.0.1", "t", "127.0.0.1", "hunter2"},
		{"credentials in a URL that does not parse", "http://u:hunter2@[::1", "t", "", "hunter2"},
		{"a query", "http://127.0.0.1/?a=1", "t", "?a=1", ""},
		{"no token", "http://127.0.0.1", "", "", ""},
		{"a token with a newline", "http://127.0.0.1", "abc\r\nX-Evil: 1", "", "abc\r\nX-Evil: 1"},
		{"a token with a space", "http://127.0.0.1", "abc def", "", "abc def"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agent.New(tc.url, tc.token)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.shows != "" && !strings.Contains(err.Error(), tc.shows) {
				t.Errorf("error %q does not name %s", err, tc.shows)
			}
			if tc.hides != "" && strings.Contains(err.Error(), tc.hides) {
				t.Errorf("error %q shows %q", err, tc.hides)
			}
		})
	}
	if _, err := agent.New("http://127.0.0.1", "t", agent.WithRetries(11, 0)); err == nil {
		t.Error("11 retries accepted")
	}
	a, _ := agent.New("http://127.0.0.1", "t")
	if _, err := a.ActingFor("x\ny"); err == nil {
		t.Error("a delegation token with a newline accepted")
	}
}

// TestHeaders: the token, the delegation when acting for a chain, and the
// traceparent of the OpenTelemetry span in the context (or of a trace
// given as a traceparent; or a fresh one).
func TestHeaders(t *testing.T) {
	a, err := agent.New("http://127.0.0.1", secretToken)
	if err != nil {
		t.Fatal(err)
	}
	h := a.Headers(t.Context())
	if h.Get("Authorization") != "Bearer "+secretToken || h.Get("X-MeshGuard-Delegation") != "" {
		t.Errorf("headers %v", h)
	}
	fresh1, fresh2 := h.Get("traceparent"), a.Headers(t.Context()).Get("traceparent")
	if _, err := agent.WithTraceParent(t.Context(), fresh1); err != nil || fresh1 == fresh2 {
		t.Errorf("fresh traceparents %q, %q: %v (want valid and different)", fresh1, fresh2, err)
	}

	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0, 0xf0, 2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(t.Context(), sc)
	if got, want := a.Headers(ctx).Get("traceparent"), "00-4bf90100000000000000000000000000-00f0020000000000-01"; got != want {
		t.Errorf("traceparent from the span = %q, want %q", got, want)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx, err = agent.WithTraceParent(t.Context(), tp)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Headers(ctx).Get("traceparent"); got != tp {
		t.Errorf("traceparent carried on = %q, want %q", got, tp)
	}
	for _, bad := range []string{"", "00-xyz", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"} {
		if _, err := agent.WithTraceParent(t.Context(), bad); err == nil {
			t.Errorf("traceparent %q accepted", bad)
		}
	}

	d, err := a.ActingFor("eyJ.delegation.sig")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Headers(t.Context()).Get("X-MeshGuard-Delegation"); got != "eyJ.delegation.sig" {
		t.Errorf("delegation header %q", got)
	}
	if a.Headers(t.Context()).Get("X-MeshGuard-Delegation") != "" {
		t.Error("ActingFor changed the original")
	}
}

// TestTransport: the agent's headers go on every request into the mesh; a caller's
// traceparent is kept; a caller's other credential is refused, never
// replaced; the caller's request is not changed.
func TestTransport(t *testing.T) {
	// Room for every request, so a request that should have been refused
	// cannot block the server (and the test) when it is not.
	got := make(chan http.Header, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	t.Cleanup(srv.Close)
	a, err := agent.New("http://127.0.0.1", secretToken, agent.WithMeshHosts(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	a, err = a.ActingFor("eyJ.delegation.sig")
	if err != nil {
		t.Fatal(err)
	}
	hc := a.HTTPClient(nil)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name     string
		set      map[string]string
		conflict bool
	}{
		{"plain", nil, false},
		{"the caller's traceparent is kept", map[string]string{"traceparent": tp}, false},
		{"the same Authorization", map[string]string{"Authorization": "Bearer " + secretToken}, false},
		{"another Authorization", map[string]string{"Authorization": "Bearer someone-else"}, true},
		{"another delegation", map[string]string{"X-MeshGuard-Delegation": "eyJ.other"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.set {
				req.Header.Set(k, v)
			}
			before := req.Header.Clone()
			resp, err := hc.Do(req)
			if tc.conflict {
				if !errors.Is(err, agent.ErrHeaderConflict) {
					if err == nil {
						resp.Body.Close()
						<-got
					}
					t.Fatalf("error %v, want ErrHeaderConflict", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := <-got
			if h.Get("Authorization") != "Bearer "+secretToken || h.Get("X-MeshGuard-Delegation") != "eyJ.delegation.sig" || len(h.Values("traceparent")) != 1 {
				t.Errorf("the server saw %v", h)
			}
			if want := tc.set["traceparent"]; want != "" && h.Get("traceparent") != want {
				t.Errorf("traceparent %q, want the caller's %q", h.Get("traceparent"), want)
			}
			if fmt.Sprint(req.Header) != fmt.Sprint(before) {
				t.Errorf("the caller's request changed: %v, was %v", req.Header, before)
			}
		})
	}
}
