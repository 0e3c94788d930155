// Package jaegertest runs a real Jaeger v2 process for end-to-end tests of
// MeshGuard's OpenTelemetry tracing, and reads traces back through Jaeger's
// query API so tests can assert on what actually arrived.
//
// The Jaeger binary is not built here: scripts/jaeger.sh builds it once into a
// per-user cache (see docs/tracing.md), and Start finds it there or through
// MESHGUARD_JAEGER_BIN. Without a binary, tests are skipped unless
// MESHGUARD_REQUIRE_JAEGER is true (1, as `make test` sets), so a plain `go test`
// on a fresh machine stays fast and green while CI cannot silently skip.
package jaegertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/internal/testenv"
)

const (
	// Version is the Jaeger release that scripts/jaeger.sh builds; it names the
	// cache directory, so it must match JAEGER_VERSION in that script.
	Version = "v1.76.0"

	// EnvBin overrides where the Jaeger binary is looked up.
	EnvBin = "MESHGUARD_JAEGER_BIN"
	// EnvRequire, when true (1), turns a missing binary into a test
	// failure instead of a skip (see required).
	EnvRequire = "MESHGUARD_REQUIRE_JAEGER"

	// startTimeout bounds the wait for Jaeger's ports: a cold start of the
	// ~100 MB binary on a loaded 2-core CI machine takes a few seconds, a
	// hang should not take the whole `go test` timeout.
	startTimeout = 60 * time.Second
	// startAttempts covers the small window in which a free port picked by
	// freePorts is taken by someone else before Jaeger binds it.
	startAttempts = 3
)

// Jaeger is a running Jaeger v2 process with in-memory storage, listening on
// 127.0.0.1 only. It is stopped by the test's cleanup.
type Jaeger struct {
	otlpGRPC  string // host:port
	otlpHTTP  string // host:port
	queryHTTP string // host:port
	logPath   string
	client    *http.Client
}

// OTLPGRPCEndpoint is the host:port of the OTLP/gRPC receiver, as taken by
// otlptracegrpc.WithEndpoint (with WithInsecure).
func (j *Jaeger) OTLPGRPCEndpoint() string { return j.otlpGRPC }

// OTLPHTTPEndpoint is the base URL of the OTLP/HTTP receiver; traces go to
// OTLPHTTPEndpoint()+"/v1/traces".
func (j *Jaeger) OTLPHTTPEndpoint() string { return "http://" + j.otlpHTTP }

// QueryURL is the base URL of Jaeger's query service (API and UI).
func (j *Jaeger) QueryURL() string { return "http://" + j.queryHTTP }

// LogPath is the file that receives Jaeger's stdout and stderr.
func (j *Jaeger) LogPath() string { return j.logPath }

// Start runs Jaeger for the duration of the test. It skips the test if no
// binary is found, unless MESHGUARD_REQUIRE_JAEGER is true.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		testenv.Missing(t, EnvRequire, fmt.Sprintf("jaegertest: %v; run scripts/jaeger.sh or `make jaeger` to build it", err))
	}

	dir := t.TempDir()
	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		j, retry, err := start(t, bin, dir, attempt)
		if err == nil {
			return j
		}
		lastErr = err
		if !retry {
			break
		}
		t.Logf("jaegertest: attempt %d: %v; retrying with other ports", attempt, err)
	}
	t.Fatalf("jaegertest: %v", lastErr)
	return nil
}

// findBinary returns the Jaeger binary from MESHGUARD_JAEGER_BIN or, failing
// that, from the cache path that scripts/jaeger.sh writes.
func findBinary() (string, error) {
	path := os.Getenv(EnvBin)
	if path == "" {
		p, err := cachePath()
		if err != nil {
			return "", err
		}
		path = p
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("jaeger binary: %w", err)
	}
	if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("jaeger binary %s is not an executable file", path)
	}
	return path, nil
}

// cachePath mirrors the script's ${XDG_CACHE_HOME:-$HOME/.cache}; it does not
// use os.UserCacheDir because that differs from the script on macOS.
func cachePath() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("locating the jaeger cache (set %s): %w", EnvBin, err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "meshguard", "jaeger-"+Version, "jaeger"), nil
}

// start makes one attempt: fresh ports, a config for them, the process, and
// the wait until it serves. retry reports a failure caused only by a port
// that was picked as free but bound by someone else before Jaeger got it.
func start(t testing.TB, bin, dir string, attempt int) (j *Jaeger, retry bool, err error) {
	// The test's context ends just before its cleanups run, so Jaeger is
	// stopped with the test even if a cleanup never gets to it.
	ctx := t.Context()
	ports, err := freePorts(ctx, 4)
	if err != nil {
		return nil, false, err
	}
	addr := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	j = &Jaeger{
		otlpGRPC:  addr(ports[0]),
		otlpHTTP:  addr(ports[1]),
		queryHTTP: addr(ports[2]),
		logPath:   filepath.Join(dir, fmt.Sprintf("jaeger-%d.log", attempt)),
		// No keep-alives: the few requests a test makes are cheap on
		// loopback, and idle connections would outlive the test as
		// goroutines, which goleak-checked packages report as leaks.
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
	}
	cfgPath := filepath.Join(dir, fmt.Sprintf("jaeger-%d.yaml", attempt))
	cfg := config(j.otlpGRPC, j.otlpHTTP, j.queryHTTP, addr(ports[3]))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, false, fmt.Errorf("writing jaeger config: %w", err)
	}
	logFile, err := os.Create(j.logPath)
	if err != nil {
		return nil, false, fmt.Errorf("creating jaeger log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.CommandContext(ctx, bin, "--config", cfgPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = dir
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("starting %s: %w", bin, err)
	}
	// exited is closed, not sent on, because both the readiness wait and
	// the cleanup need to observe the exit.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		// Kill, not SIGTERM: storage is in memory, so there is nothing to
		// flush, and a graceful shutdown only slows every test down.
		_ = cmd.Process.Kill()
		<-exited
	}
	if err := j.waitReady(ctx, exited, func() error { return waitErr }); err != nil {
		stop()
		log := j.readLog()
		return nil, strings.Contains(log, "address already in use"), fmt.Errorf("jaeger did not become ready: %w\n--- jaeger log ---\n%s", err, log)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("--- jaeger log (%s) ---\n%s", j.logPath, j.readLog())
		}
	})
	return j, false, nil
}

// freePorts reserves n distinct loopback ports by holding all listeners open
// at once, then releases them for Jaeger to bind.
func freePorts(ctx context.Context, n int) ([]int, error) {
	var lc net.ListenConfig
	ports := make([]int, 0, n)
	for range n {
		l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady polls until both OTLP receivers accept connections and the query
// API answers. Receivers start after exporters and extensions in the
// collector, so open receiver ports mean the whole pipeline is up.
func (j *Jaeger) waitReady(ctx context.Context, exited <-chan struct{}, exitErr func() error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		last := j.probe(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("jaeger exited during startup: %w", exitErr())
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %w", startTimeout, last)
		case <-tick.C:
		}
	}
}

func (j *Jaeger) probe(ctx context.Context) error {
	d := net.Dialer{Timeout: time.Second}
	for _, a := range []string{j.otlpGRPC, j.otlpHTTP} {
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			return fmt.Errorf("OTLP receiver %s: %w", a, err)
		}
		c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.QueryURL()+"/api/services", nil)
	if err != nil {
		return fmt.Errorf("query API: %w", err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("query API: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("query API /api/services: status %s", resp.Status)
	}
	return nil
}

func (j *Jaeger) readLog() string {
	b, err := os.ReadFile(j.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", j.logPath, err)
	}
	return string(bytes.TrimSpace(b))
}

// config is a minimal Jaeger v2 (OpenTelemetry collector) configuration: OTLP
// in, memory storage, query API out, every listener on a given loopback port.
//
// Deliberately left out, because the defaults of v1.76.0 listen on fixed ports
// and would collide between parallel test packages (or with a developer's own
// Jaeger): the jaeger/zipkin receivers, remote_sampling (5778/5779),
// healthcheckv2 (13133), expvar, zpages and pprof. Components that are not
// listed under service are never started. The collector's own metrics would
// serve Prometheus on 8888; level none turns that reader off. The query
// service's gRPC API is not used but cannot be disabled, so it gets a free
// port too, and enable_tracing is off because Jaeger would otherwise export
// its own query spans to the default OTLP port 4317.
func config(otlpGRPC, otlpHTTP, queryHTTP, queryGRPC string) string {
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: %s
    grpc:
      endpoint: %s

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, queryHTTP, queryGRPC, otlpGRPC, otlpHTTP)
}
