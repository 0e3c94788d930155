package extauthz

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshguard/meshguard/engine"
)

// TestFailureLogPath: when MeshGuard cannot decide, the error log names
// the request's path without its query string or fragment (either may
// carry a secret, wherever it starts) and cut to 256 bytes, so a caller
// cannot flood the log. A CheckRequest's path is whatever its sender
// wrote, so it need not start with '/'.
func TestFailureLogPath(t *testing.T) {
	var logs syncBuffer
	client := startGRPC(t, failing{fmt.Errorf("%w: store: database is locked", engine.ErrInternal)}, testLog(t, &logs))
	long := "/" + strings.Repeat("p", 255) // 256 bytes
	for _, tc := range []struct{ name, path, want string }{
		{"a query", "/docs?api_key=s3cret", "/docs"},
		{"a query and nothing before it", "?api_key=s3cret", ""},
		{"a fragment and nothing before it", "#s3cret", ""},
		{"256 bytes", long, long},
		{"257 bytes", long + "q", long + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "docs.internal", Path: tc.path},
			}}}
			resp, err := client.Check(context.Background(), req)
			if status.Code(err) != codes.Unavailable || resp != nil {
				t.Fatalf("got %v, %v; want Unavailable and no response", resp, err)
			}
			// The server logged before it answered: the line is there, the
			// last one about a failure.
			var got, raw string
			sc := bufio.NewScanner(strings.NewReader(logs.String()))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var line struct{ Msg, Path string }
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					t.Fatalf("log line %q: %v", sc.Text(), err)
				}
				if strings.Contains(line.Msg, "fail closed") {
					got, raw = line.Path, sc.Text()
				}
			}
			if raw == "" || got != tc.want {
				t.Fatalf("logged path %q, want %q", got, tc.want)
			}
			if strings.Contains(raw, "s3cret") {
				t.Fatalf("the log holds the secret: %s", raw)
			}
		})
	}
}
