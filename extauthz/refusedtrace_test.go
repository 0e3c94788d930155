package extauthz

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/meshguard/meshguard/engine/enginetest"
)

// A request refused before the engine — a bound broken, the header scan
// stopped before it reached the traceparent — still names the caller's
// trace in its denial (docs/enforcement.md: "The trace id is returned in
// x-meshguard-trace-id and in every deny body"), so the refusal can be
// found from the caller's side.

// laterVersion is a traceparent of a later version with one more field:
// 64 bytes, read as W3C Trace Context asks (the trace id counts).
var laterVersion = "01" + traceparent[2:] + "-" + strings.Repeat("e", 64-len(traceparent)-1)

// TestGRPCRefusalJoinsTheTrace covers the headers map and header_map
// (encode_raw_headers), the traceparent in value or raw_value.
func TestGRPCRefusalJoinsTheTrace(t *testing.T) {
	if len(laterVersion) != 64 {
		t.Fatalf("laterVersion is %d bytes", len(laterVersion))
	}
	m := newMesh(t, enginetest.Options{})
	client := startGRPC(t, m.f.Engine, testLog(t, nil))
	auth := "Bearer " + m.mailT
	// header_map: authorization, what goes first, the traceparent as tp
	// says, then what goes last.
	raw := func(first []string, tp *corev3.HeaderValue, last []string) *authv3.CheckRequest {
		req := rawHeaders("GET", "/contacts", append([]string{"authorization", auth}, first...)...)
		hm := req.Attributes.Request.Http.HeaderMap
		hm.Headers = append(hm.Headers, tp)
		hm.Headers = append(hm.Headers, rawHeaders("", "", last...).Attributes.Request.Http.HeaderMap.Headers...)
		return req
	}
	inRaw := func(tp string) *corev3.HeaderValue {
		return &corev3.HeaderValue{Key: "traceparent", RawValue: []byte(tp)}
	}
	inValue := func(tp string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: "traceparent", Value: tp} }
	long := []string{"x-big", strings.Repeat("b", MaxHeaderValueLen+1)}
	tests := []struct {
		name  string
		req   *authv3.CheckRequest
		joins bool // the denial names traceHex; else a fresh trace
	}{
		{"headers map, too many headers", mapRequest(withAuth(fillers(MaxHeaders), m.mailT), nil), true},
		{"header_map, too many headers, raw_value", raw(nil, inRaw(traceparent), rawFillers(MaxHeaders)), true},
		{"header_map, too many headers, value", raw(nil, inValue(traceparent), rawFillers(MaxHeaders)), true},
		{"header_map, too many headers, after the other headers", raw(rawFillers(MaxHeaders), inRaw(traceparent), nil), true},
		{"header_map, scan stopped before the traceparent, raw_value", raw(long, inRaw(traceparent), nil), true},
		{"header_map, scan stopped before the traceparent, value", raw(long, inValue(traceparent), nil), true},
		{"header_map, a later version of 64 bytes in raw_value", raw(nil, inRaw(laterVersion), rawFillers(MaxHeaders)), true},
		// The refusal copies at most 64 bytes of raw_value: a longer one,
		// which may be up to 32 KiB, starts a new trace.
		{"header_map, a later version of 65 bytes in raw_value", raw(nil, inRaw(laterVersion+"e"), rawFillers(MaxHeaders)), false},
		{"header_map, no traceparent", raw(nil, &corev3.HeaderValue{Key: "x-other", RawValue: []byte(traceparent)}, rawFillers(MaxHeaders)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.Attributes.Request.Http.Headers != nil {
				tc.req.Attributes.Request.Http.Headers["traceparent"] = traceparent
			}
			b, _ := denied(t, check(t, client, tc.req), 400)
			if (b.TraceID == traceHex) != tc.joins {
				t.Fatalf("deny body trace id %q (%s); joins the caller's %s: %v, want %v", b.TraceID, b.Message, traceHex, !tc.joins, tc.joins)
			}
		})
	}
}

// TestHTTPRefusalJoinsTheTrace: the HTTP path, refused for the header
// count before any header is scanned. (A refusal mid-scan cannot be
// arranged to come before the Traceparent: net/http hands the headers over
// as a map, in random order.)
func TestHTTPRefusalJoinsTheTrace(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	srv := startHTTP(t, m.f.Engine, testLog(t, nil))
	h := map[string]string{"Authorization": "Bearer " + m.mailT}
	for i := range MaxHeaders {
		h[fmt.Sprintf("X-Fill-%03d", i)] = "v"
	}
	resp, raw := envoyHTTP(t, srv.URL, "GET", "crm.internal", "/contacts", h)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	if b := decodeBody(t, raw); b.TraceID != traceHex {
		t.Fatalf("deny body trace id %q (%s), want the caller's %s", b.TraceID, b.Message, traceHex)
	}
}
