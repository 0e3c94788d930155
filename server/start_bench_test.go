package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store/pgtest"
)

// BenchmarkStart times a start, from Run to Ready (the store already
// migrated by an earlier start, as on every restart), with the demo's
// policies and catalogue, and with 10,000 rules (bench/memory's shape:
// 100 policies of 100 rules), on SQLite and, with
// MESHGUARD_TEST_DATABASE_URL set, on PostgreSQL. The stop is outside the
// timer; cpu-ms/op is the process's CPU time per start and stop, which
// counts what a start leaves running after Ready too (the change feed's
// reloads on PostgreSQL).
func BenchmarkStart(b *testing.B) {
	for _, bc := range []struct {
		name     string
		policies func(b *testing.B) string
	}{
		{"demo", func(*testing.B) string { return filepath.Join("..", "examples", "policies") }},
		{"10k-rules", func(b *testing.B) string { return writeRules(b, b.TempDir(), 10000) }},
	} {
		for _, db := range []string{"sqlite", "postgres"} {
			name := bc.name
			if db == "postgres" {
				name += "-postgres"
			}
			b.Run(name, func(b *testing.B) {
				cfg, err := config.Load("", nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				dir := b.TempDir()
				cfg.Port, cfg.GRPCPort = 0, 0
				cfg.DataDir = filepath.Join(dir, "data")
				if db == "postgres" {
					if os.Getenv(pgtest.EnvURL) == "" {
						b.Skip(pgtest.EnvURL + " is not set")
					}
					cfg.DatabaseURL = pgtest.NewDatabase(b)
				}
				cfg.PoliciesDir = bc.policies(b)
				cfg.ServicesFile = filepath.Join("..", "examples", "services.yaml")
				cfg.ProxyAuth.ProxiesFile = writeProxies(b, dir, testProxy{name: testProxyName, token: testProxyToken})
				startOnce(b, cfg)() // migrates the store
				cpu := cpuTime(b)
				b.ResetTimer()
				for b.Loop() {
					stop := startOnce(b, cfg)
					b.StopTimer()
					stop()
					b.StartTimer()
				}
				b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startOnce runs the server until Ready and returns what stops it.
func startOnce(b *testing.B, cfg *config.Config) (stop func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan Addrs, 1), make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Ready: ready, Logger: slog.New(slog.DiscardHandler),
			KeyReload: time.Hour, RevokedReload: time.Hour, ShutdownGrace: time.Second})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		b.Fatalf("start: %v", err)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("stop: %v", err)
		}
	}
}

// writeRules writes rules rules into dir, 100 a policy, and returns dir.
func writeRules(tb testing.TB, dir string, rules int) string {
	tb.Helper()
	const perPolicy = 100
	for p := 0; p*perPolicy < rules; p++ {
		var s strings.Builder
		fmt.Fprintf(&s, "name: team-%02d\nappliesTo: {tags: [team-%02d]}\nrules:\n", p, p%100)
		for r := p * perPolicy; r < min(rules, (p+1)*perPolicy); r++ {
			switch r % 3 {
			case 0:
				fmt.Fprintf(&s, "  - {name: r%05d, effect: allow, actions: [\"read:team-%02d/doc-%05d/*\"]}\n", r, p, r)
			case 1:
				fmt.Fprintf(&s, "  - {name: r%05d, effect: deny, actions: [\"delete:team-%02d/*\"]}\n", r, p)
			default:
				fmt.Fprintf(&s, "  - name: r%05d\n    effect: allow\n    actions: [\"write:email\"]\n    conditions: {context: {query.to: {matches: \"*@team-%05d.example.com\"}}}\n", r, r)
			}
		}
		s.WriteString("defaultEffect: deny\n")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("team-%03d.yaml", p)), []byte(s.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
