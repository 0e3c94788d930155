package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineWatch is a stderr that closes seen once a line containing want has
// been written: the event the test waits for.
type lineWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	done bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *lineWatch) line() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for l := range strings.SplitSeq(w.buf.String(), "\n") {
		if strings.Contains(l, w.want) {
			return l
		}
	}
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServeLogFormat: LOG_FORMAT picks text or JSON (auto: JSON, stderr
// being no terminal here), and serve logs both addresses it listens on.
func TestServeLogFormat(t *testing.T) {
	tests := []struct {
		name, format string
		text         bool
	}{
		{"text", "text", true},
		{"json", "json", false},
		{"auto, not a terminal", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
			grpcAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
			_, hp, _ := net.SplitHostPort(httpAddr)
			_, gp, _ := net.SplitHostPort(grpcAddr)
			env := map[string]string{"HOST": "127.0.0.1", "PORT": hp, "GRPC_PORT": gp, "LOG_FORMAT": tt.format,
				"DATA_DIR": filepath.Join(dir, "data"), "POLICIES_DIR": filepath.Join(dir, "policies")}
			if err := os.Mkdir(env["POLICIES_DIR"], 0o700); err != nil {
				t.Fatal(err)
			}
			errw := &lineWatch{want: "meshguard serving", seen: make(chan struct{})}
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			exited := make(chan int, 1)
			go func() {
				exited <- Main(ctx, []string{"serve"}, Options{Version: "v0.0.0-test", Stdout: &bytes.Buffer{}, Stderr: errw,
					Getenv: func(k string) string { return env[k] }})
			}()
			select {
			case <-errw.seen:
			case code := <-exited:
				t.Fatalf("serve exited %d before serving:\n%s", code, errw.buf.String())
			case <-time.After(30 * time.Second):
				t.Fatal("serve logged no 'meshguard serving' in 30s")
			}
			cancel()
			if code := <-exited; code != 0 {
				t.Errorf("serve exited %d after cancel", code)
			}
			line := errw.line()
			if tt.text {
				want := regexp.MustCompile(`^time=\S+ level=INFO msg="meshguard serving" http=` + regexp.QuoteMeta(httpAddr) + ` grpc=` + regexp.QuoteMeta(grpcAddr) + ` `)
				if !want.MatchString(line) {
					t.Errorf("text log line %q does not match %s", line, want)
				}
				return
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("JSON log line %q: %v", line, err)
			}
			if rec["msg"] != "meshguard serving" || rec["http"] != httpAddr || rec["grpc"] != grpcAddr {
				t.Errorf("JSON log line %q: want msg, http %s, grpc %s", line, httpAddr, grpcAddr)
			}
		})
	}
}
