package edge

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBearer(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc":     "abc",
		"bearer abc":     "abc",
		"BEARER\tabc ":   "abc",
		"  Bearer   abc": "abc",
		"Bearer":         "",
		"Bearer ":        "",
		"Bearerabc":      "",
		"Basic dXNlcjpw": "",
		"":               "",
		"Token abc":      "",
		"Bearer a.b.c  ": "a.b.c",
	} {
		if got := Bearer(in); got != want {
			t.Errorf("Bearer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTraceID(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for in, want := range map[string]string{
		"00-" + id + "-00f067aa0ba902b7-01":                       id,
		" 00-" + id + "-00f067aa0ba902b7-01 ":                     id,
		"01-" + id + "-00f067aa0ba902b7-01-future":                id,
		"00-" + id + "-00f067aa0ba902b7-01-extra":                 "", // version 00 is exactly 55 bytes
		"ff-" + id + "-00f067aa0ba902b7-01":                       "",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": "",
		"00-" + id + "-0000000000000000-01":                       "",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": "",
		"00-" + id + "-00f067aa0ba902b7":                          "",
		"garbage":                                                 "",
		"":                                                        "",
	} {
		if got := TraceID(in); got != want {
			t.Errorf("TraceID(%q) = %q, want %q", in, got, want)
		}
	}
	if !ValidTraceID(id) || ValidTraceID("0000") || ValidTraceID("00000000000000000000000000000000") {
		t.Fatal("ValidTraceID")
	}
}

func TestParseTraceparent(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		in      string
		sampled bool
	}{
		{"00-" + id + "-00f067aa0ba902b7-01", true},
		{"00-" + id + "-00f067aa0ba902b7-00", false},
		{"00-" + id + "-00f067aa0ba902b7-0b", true}, // other flag bits set too
		{"00-" + id + "-00f067aa0ba902b7-0a", false},
	}
	for _, tc := range tests {
		p, ok := ParseTraceparent(tc.in)
		if !ok || p.TraceID != id || p.SpanID != "00f067aa0ba902b7" || p.Sampled != tc.sampled {
			t.Errorf("ParseTraceparent(%q) = %+v %v, want sampled=%v", tc.in, p, ok, tc.sampled)
		}
	}
	if p, ok := ParseTraceparent("00-" + id + "-00f067aa0ba902b7-zz"); ok || p != (Traceparent{}) {
		t.Errorf("bad flags parsed: %+v", p)
	}
}

// TestMount: requests go to the mounted handler by their raw path, and an
// absolute-form target by the path inside it.
func TestMount(t *testing.T) {
	mounted := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	other := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	h := Mount("/proxy", mounted, other)
	tests := []struct {
		target string
		want   int
	}{
		{"/proxy", http.StatusTeapot},
		{"/proxy/x?y=1", http.StatusTeapot},
		{"/proxy?y=1", http.StatusTeapot},
		{"/proxyx", http.StatusNotFound},
		{"/admin/agents", http.StatusNotFound},
		{"/a/../proxy/x", http.StatusNotFound},
		{"http://example.com/proxy/x", http.StatusTeapot},
		{"http://example.com/proxy", http.StatusTeapot},
		{"https://example.com/proxyx", http.StatusNotFound},
		{"http://example.com/admin/agents", http.StatusNotFound},
		{"*", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + tt.target + " HTTP/1.1\r\nHost: gw\r\n\r\n")))
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}
