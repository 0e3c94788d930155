package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/internal/gcbudget"
	"github.com/meshguard/meshguard/server"
)

func (a *app) serveCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run MeshGuard: Envoy ext_authz (gRPC and HTTP), the gateway, the admin API",
		Long: "Serves HTTP on PORT (gateway /proxy/*, /v1/check, /v1/delegations, the admin API, /envoy/authz,\n" +
			"health, JWKS) and gRPC on GRPC_PORT (envoy.service.auth.v3.Authorization, health, reflection).\n" +
			"Every setting is a flag, an environment variable and a key of the --config file; flags win over\n" +
			"the environment, which wins over the file. docs/configuration.md lists them all, with their defaults\n" +
			"and the page that explains each. SIGTERM or Ctrl-C shuts down gracefully.",
		Args: exactArgs(0),
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "YAML file of settings (keys in lowerCamelCase: dataDir) and routes (docs/configuration.md)")
	for _, f := range config.Flags() {
		if f.Name == "admin-token" {
			continue // the global --admin-token flag serves here too
		}
		fl.String(f.Name, f.Default, f.Usage+" (env "+f.Env+")")
	}
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		set := map[string]string{}
		cmd.Flags().Visit(func(f *pflag.Flag) {
			if f.Name != "config" {
				set[f.Name] = f.Value.String()
			}
		})
		if cmd.Flags().Changed("admin-token") {
			set["admin-token"] = a.g.adminToken
		}
		cfg, err := config.Load(configPath, a.Getenv, set)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		log := slog.New(logHandler(a.Stderr, cfg.LogFormat, logLevel(cfg.LogLevel)))
		defer paceGC(cfg.GCHeapBudgetMB, a.Getenv, log)()
		defer limitMemory(cfg.GCMemoryLimitPercent, a.Getenv, os.DirFS("/"), log)()
		err = server.Run(cmd.Context(), cfg, server.Options{
			Logger:   log,
			Announce: func(s string) { fmt.Fprintln(a.Stdout, s) },
			Getenv:   a.Getenv,
			Version:  a.Version,
		})
		if err != nil && !errors.Is(err, cmd.Context().Err()) {
			return err
		}
		return nil
	})
	return cmd
}

// paceGC paces the garbage collector within the heap budget
// (GC_HEAP_BUDGET_MB) and returns what stops it. An operator's GOGC wins.
func paceGC(budgetMB int, getenv func(string) string, log *slog.Logger) (stop func()) {
	if budgetMB == 0 {
		return func() {}
	}
	if v := getenv("GOGC"); v != "" {
		log.Info("GC_HEAP_BUDGET_MB not used: GOGC is set", "GOGC", v)
		return func() {}
	}
	// The runtime's own setting too, as in limitMemory: a GOGC in the
	// process's real environment, or one an embedding program set.
	if p := gcPercent(); p != 100 {
		log.Info("GC_HEAP_BUDGET_MB not used: the collector's percentage is already set", "GOGC", p)
		return func() {}
	}
	p, err := gcbudget.Start(uint64(budgetMB) << 20)
	if err != nil { // a second serve in one process (tests)
		log.Warn("GC_HEAP_BUDGET_MB not used", "err", err)
		return func() {}
	}
	log.Debug("garbage collector paced within the heap budget", "GC_HEAP_BUDGET_MB", budgetMB)
	return p.Stop
}

// gcPercent is the runtime's GOGC (-1: off), read without changing it.
func gcPercent() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100 // a Go without the metric: what it would default to
	}
	return int64(s[0].Value.Uint64())
}

// limitMemory sets Go's soft memory limit to percent of the memory limit
// of the cgroup serve runs in (GC_MEMORY_LIMIT_PERCENT), read from root
// ("/"), and returns what restores the limit before. An operator's
// GOMEMLIMIT wins; no cgroup limit, or one that cannot be read, sets none.
func limitMemory(percent int, getenv func(string) string, root fs.FS, log *slog.Logger) (restore func()) {
	if percent == 0 {
		return func() {}
	}
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Info("GC_MEMORY_LIMIT_PERCENT not used: GOMEMLIMIT is set", "GOMEMLIMIT", v)
		return func() {}
	}
	// The runtime's own setting too: the process's real GOMEMLIMIT when
	// getenv is not the process's environment, or a program embedding
	// serve that set a limit.
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		log.Info("GC_MEMORY_LIMIT_PERCENT not used: a memory limit is already set", "limit_bytes", cur)
		return func() {}
	}
	limit, err := gcbudget.CgroupMemoryLimit(root)
	if err != nil {
		log.Warn("GC_MEMORY_LIMIT_PERCENT not used: the cgroup's memory limit cannot be read", "err", err)
		return func() {}
	}
	soft := gcbudget.SoftLimit(limit, percent)
	if soft == 0 {
		log.Debug("no cgroup memory limit: no soft memory limit set")
		return func() {}
	}
	before := debug.SetMemoryLimit(soft)
	log.Info("soft memory limit set from the cgroup's memory limit", "cgroup_limit_bytes", limit, "GC_MEMORY_LIMIT_PERCENT", percent, "soft_limit_bytes", soft)
	return func() { debug.SetMemoryLimit(before) }
}

// logHandler writes the server's logs to w as LOG_FORMAT says: text for a
// person at a terminal, JSON for a log collector; auto picks by whether w
// is a terminal.
func logHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" || (format == "auto" && isTerminal(w)) {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
