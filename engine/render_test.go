package engine_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
)

// TestDenyRendering: ErrorCode and RetryAfterSeconds are what the deny body
// and Retry-After say — the one rendering adapters and /v1/check share. A
// wait rounds up to whole seconds and is never 0.
func TestDenyRendering(t *testing.T) {
	tests := []struct {
		name  string
		d     engine.Decision
		code  string
		retry int
	}{
		{"unauthorized", engine.Decision{Status: 401}, "unauthorized", 0},
		{"bad request", engine.Decision{Status: 400}, "bad_request", 0},
		{"forbidden", engine.Decision{Status: 403}, "forbidden", 0},
		{"rate limited, no wait known", engine.Decision{Status: 429}, "rate_limited", 1},
		{"rate limited, a nanosecond", engine.Decision{Status: 429, RetryAfter: time.Nanosecond}, "rate_limited", 1},
		{"rate limited, two seconds", engine.Decision{Status: 429, RetryAfter: 2 * time.Second}, "rate_limited", 2},
		{"rate limited, a little over two", engine.Decision{Status: 429, RetryAfter: 2*time.Second + time.Millisecond}, "rate_limited", 3},
		{"a wait on a 403 is not shown", engine.Decision{Status: 403, RetryAfter: time.Minute}, "forbidden", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.ErrorCode(); got != tc.code {
				t.Fatalf("ErrorCode = %q, want %q", got, tc.code)
			}
			if got := tc.d.RetryAfterSeconds(); got != tc.retry {
				t.Fatalf("RetryAfterSeconds = %d, want %d", got, tc.retry)
			}
			var body struct {
				Error      string `json:"error"`
				RetryAfter int    `json:"retry_after"`
			}
			if err := json.Unmarshal(tc.d.DenyBody(), &body); err != nil || body.Error != tc.code || body.RetryAfter != tc.retry {
				t.Fatalf("deny body %s (%v); want error %q, retry_after %d", tc.d.DenyBody(), err, tc.code, tc.retry)
			}
			header := ""
			for _, h := range tc.d.ResponseHeaders() {
				if h.Name == "retry-after" {
					header = h.Value
				}
			}
			if want := map[bool]string{true: strconv.Itoa(tc.retry), false: ""}[tc.retry > 0]; header != want {
				t.Fatalf("Retry-After %q, want %q", header, want)
			}
		})
	}
}
