// Package config reads `meshguard serve`'s settings from, in
// rising precedence, built-in defaults, an optional YAML file (--config),
// environment variables, and command-line flags. Every setting has one
// name in each: `dataDir` in the file, DATA_DIR in the environment,
// --data-dir on the command line.
//
// Reading is strict, as SPIRE's is: an unknown key in the file, or a bad
// value anywhere, stops start-up with an error that names the key and where
// it came from. Nothing falls back to a default silently.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/yamldoc"
)

// Config is the server's configuration.
type Config struct {
	Host     string
	Port     int
	GRPCPort int
	Mode     engine.Mode
	// Answer is what answers carry beyond the default (ANSWER_EXTRAS).
	Answer          engine.Answer
	DataDir         string
	DatabaseURL     string
	PoliciesDir     string
	ServicesFile    string
	ListenerPort    int
	XDSAuthzAddress string
	XDSHTTPAddress  string
	WasmFilterPath  string
	AdminToken      string
	// Console serves the web console under /ui/ (docs/console.md);
	// ConsoleTraceURL links a trace id to the tracing backend.
	Console            bool
	ConsoleTraceURL    string
	JWTSecret          string
	ProxyTarget        string
	ProxyServices      bool // gateway: the catalogue's services, not ProxyTarget
	AuditRetentionDays int
	AuditFlushMs       int
	// AuditMaxLagMs bounds how long a decided record may wait unstored
	// before decisions are refused; 0 is 500 ms or twice AuditFlushMs.
	AuditMaxLagMs int
	// AuditCheckpointSeconds is how often the audit trail's head is signed.
	AuditCheckpointSeconds int
	// TraceDenials "always" records every denial in the trace, whatever
	// the sampler said; "sampled" (the default) follows the sampler.
	TraceDenials string
	AuditEnabled bool
	// AuditArguments records an agent-protocol call's arguments (redacted)
	// besides their digest; AuditRedact names the members redacted.
	AuditArguments bool
	AuditRedact    []string
	// ApprovalPendingTTL is how long a raised human approval waits for a
	// person before it expires (docs/governance.md).
	ApprovalPendingTTL time.Duration
	// ApprovalRetention is how long an approval is kept past its expiry
	// before retention deletes it; 0 keeps every approval forever.
	ApprovalRetention time.Duration
	RateLimitRPM      int
	LogLevel          string
	// LogFormat is text, json, or auto: text when stderr is a terminal.
	LogFormat string
	// GCHeapBudgetMB is the heap (MiB) within which the garbage collector
	// runs less often than Go's default (internal/gcbudget); 0 keeps Go's
	// default throughout.
	GCHeapBudgetMB int
	// GCMemoryLimitPercent is the soft memory limit serve sets, as a
	// percentage of its cgroup's memory limit when it has one; 0 sets none.
	GCMemoryLimitPercent int
	// Routes map requests to actions (file only: it is structured).
	Routes []engine.Route
	// Alerts are the ALERT_* settings.
	Alerts Alerts
	// TLS and ProxyAuth secure the control plane (config/tls.go).
	TLS       TLS
	ProxyAuth ProxyAuth
}

// ErrInvalid wraps every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// hostPort parses an optional host:port.
func hostPort(field func(c *Config) *string) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		if v != "" {
			host, p, err := net.SplitHostPort(v)
			n, perr := strconv.Atoi(p)
			if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%q: expected host:port", v)
			}
		}
		*field(c) = v
		return nil
	}
}

// setting describes one scalar setting in its three spellings.
type setting struct {
	key, env, flag, usage string
	def                   string
	set                   func(c *Config, v string) error
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func port(dst func(*Config) *int) func(*Config, string) error {
	return intIn(dst, 1, 65535)
}

// listenPort also takes 0, any free port: serve logs the ports it got
// ("meshguard serving"), which is how the SDKs' tests start a real server.
func listenPort(dst func(*Config) *int) func(*Config, string) error {
	return intIn(dst, 0, 65535)
}

func intIn(dst func(*Config) *int, lo, hi int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q: expected a whole number from %d to %d", v, lo, hi)
		}
		*dst(c) = n
		return nil
	}
}

// Settings lists every scalar setting, in the order help shows them.
var settings = []setting{
	{"host", "HOST", "host", "bind address (0.0.0.0 in containers)", "127.0.0.1", str(func(c *Config) *string { return &c.Host })},
	{"port", "PORT", "port", "HTTP port: gateway, admin API, /v1, /envoy/authz, health, JWKS (0: any free port)", "3100", listenPort(func(c *Config) *int { return &c.Port })},
	{"grpcPort", "GRPC_PORT", "grpc-port", "gRPC port: Envoy ext_authz, health, reflection (0: any free port)", "3101", listenPort(func(c *Config) *int { return &c.GRPCPort })},
	{"mode", "MODE", "mode", "enforce, or audit: decide and record everything, but allow", "enforce", func(c *Config, v string) error {
		switch engine.Mode(v) {
		case engine.ModeEnforce, engine.ModeAudit:
			c.Mode = engine.Mode(v)
			return nil
		}
		return fmt.Errorf("%q: expected enforce or audit", v)
	}},
	{"answerExtras", "ANSWER_EXTRAS", "answer-extras", "what every answer carries beyond the agent id, delegation and traceparent: agent-name, tier, chain, decision-id, response-headers, metadata, all, or none", "none", func(c *Config, v string) error {
		a, err := engine.ParseAnswer(v)
		if err != nil {
			return err
		}
		c.Answer = a
		return nil
	}},
	{"dataDir", "DATA_DIR", "data-dir", "embedded store (SQLite) and generated secrets", "./data", str(func(c *Config) *string { return &c.DataDir })},
	{"databaseUrl", "DATABASE_URL", "database-url", "postgres://… to use PostgreSQL instead of SQLite (several replicas share it)", "", func(c *Config, v string) error {
		if v == "" {
			c.DatabaseURL = ""
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || (u.Host == "" && u.Query().Get("host") == "") {
			// Not %q of v: it may hold a password.
			return errors.New("expected a postgres:// or postgresql:// URL with a host")
		}
		c.DatabaseURL = v
		return nil
	}},
	{"policiesDir", "POLICIES_DIR", "policies-dir", "YAML policy files, watched and hot-reloaded", "./policies", str(func(c *Config) *string { return &c.PoliciesDir })},
	{"servicesFile", "SERVICES_FILE", "services-file", "the service catalogue the xDS server configures Envoys from (YAML, watched); empty: no services", "", str(func(c *Config) *string { return &c.ServicesFile })},
	{"listenerPort", "LISTENER_PORT", "listener-port", "the port of the ingress listener served to Envoys over xDS", "10000", port(func(c *Config) *int { return &c.ListenerPort })},
	{"xdsAuthzAddress", "XDS_AUTHZ_ADDRESS", "xds-authz-address", "host:port at which Envoys reach MeshGuard's gRPC port (default: 127.0.0.1 and the gRPC port)", "", hostPort(func(c *Config) *string { return &c.XDSAuthzAddress })},
	{"xdsHttpAddress", "XDS_HTTP_ADDRESS", "xds-http-address", "host:port at which Envoys reach MeshGuard's HTTP port, for the wasm filter (default: 127.0.0.1 and PORT)", "", hostPort(func(c *Config) *string { return &c.XDSHTTPAddress })},
	{"wasmFilterPath", "WASM_FILTER_PATH", "wasm-filter-path", "meshguard-filter.wasm as Envoys see it: the ingress listener then runs the wasm filter instead of ext_authz (empty: ext_authz)", "", func(c *Config, v string) error {
		if v != "" && !strings.HasSuffix(v, ".wasm") {
			return fmt.Errorf("%q: expected the path of a .wasm file", v)
		}
		c.WasmFilterPath = v
		return nil
	}},
	{"adminToken", "ADMIN_TOKEN", "admin-token", "admin API token (generated into DATA_DIR if unset)", "", func(c *Config, v string) error {
		if v != "" && len(v) < 16 {
			return errors.New("must be at least 16 characters")
		}
		c.AdminToken = v
		return nil
	}},
	{"console", "CONSOLE", "console", "serve the web console under /ui/ on the HTTP port (signed in with the admin token)", "true", func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q: expected true or false", v)
		}
		c.Console = b
		return nil
	}},
	{"consoleTraceUrl", "CONSOLE_TRACE_URL", "console-trace-url", "the console links each trace id here: an http(s) URL holding {traceId} (Jaeger: http://jaeger:16686/trace/{traceId})", "", func(c *Config, v string) error {
		if err := CheckTraceURL(v); err != nil {
			return err
		}
		c.ConsoleTraceURL = v
		return nil
	}},
	{"jwtSecret", "JWT_SECRET", "jwt-secret", "also accept HS256 agent tokens signed with this secret (≥ 32 bytes)", "", func(c *Config, v string) error {
		if v != "" && len(v) < 32 {
			return errors.New("must be at least 32 bytes (RFC 7518 §3.2)")
		}
		c.JWTSecret = v
		return nil
	}},
	{"proxyTarget", "PROXY_TARGET", "proxy-target", "upstream URL for the gateway /proxy/*", "", func(c *Config, v string) error {
		if v == "" {
			c.ProxyTarget = ""
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return errors.New("expected an http:// or https:// URL with a host, and no user info, query or fragment")
		}
		c.ProxyTarget = v
		return nil
	}},
	{"proxyServices", "PROXY_SERVICES", "proxy-services", "the gateway forwards /proxy/<service>/* to the service catalogue's services (not with PROXY_TARGET)", "false", func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q: expected true or false", v)
		}
		c.ProxyServices = b
		return nil
	}},
	{"auditRetentionDays", "AUDIT_RETENTION_DAYS", "audit-retention-days", "audit records older than this are deleted", "90", intIn(func(c *Config) *int { return &c.AuditRetentionDays }, 1, 36500)},
	{"auditFlushMs", "AUDIT_FLUSH_MS", "audit-flush-ms", "how long audit records may wait to be written together (0 = every decision waits for its record)", "50", intIn(func(c *Config) *int { return &c.AuditFlushMs }, 0, 60_000)},
	{"auditMaxLagMs", "AUDIT_MAX_LAG_MS", "audit-max-lag-ms", "how long a decided audit record may wait unstored before decisions are refused (0 = 500 or twice AUDIT_FLUSH_MS)", "0", intIn(func(c *Config) *int { return &c.AuditMaxLagMs }, 0, 600_000)},
	{"traceDenials", "TRACE_DENIALS", "trace-denials", "sampled (denials are traced as OTEL_TRACES_SAMPLER decides) or always (every denial is exported, whatever the sampler said)", "sampled", func(c *Config, v string) error {
		switch v = strings.TrimSpace(v); v {
		case "sampled", "always":
			c.TraceDenials = v
			return nil
		}
		return fmt.Errorf("%q: expected sampled or always", v)
	}},
	{"auditCheckpointSeconds", "AUDIT_CHECKPOINT_SECONDS", "audit-checkpoint-seconds", "how often the audit trail's head is signed (a checkpoint that detects deleted records)", "60", intIn(func(c *Config) *int { return &c.AuditCheckpointSeconds }, 1, 86_400)},
	{"auditEnabled", "AUDIT_ENABLED", "audit-enabled", "record every decision in the audit trail (false only for benchmarks and throwaway set-ups)", "true", func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q: expected true or false", v)
		}
		c.AuditEnabled = b
		return nil
	}},
	{"auditArguments", "AUDIT_ARGUMENTS", "audit-arguments", "record an MCP tool call's arguments (redacted, up to 8 KiB) besides their digest", "false", func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q: expected true or false", v)
		}
		c.AuditArguments = b
		return nil
	}},
	{"auditRedact", "AUDIT_REDACT", "audit-redact", "comma-separated argument names whose values are recorded as [redacted], at any depth", defaultRedact, redactList},
	{"approvalPendingTtl", "APPROVAL_PENDING_TTL", "approval-pending-ttl", "how long a human approval waits for a person before it expires (a Go duration, 1m to 720h)", "24h", func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < time.Minute || d > 720*time.Hour {
			return fmt.Errorf("%q: expected a duration from 1m to 720h, such as 30m or 24h", v)
		}
		c.ApprovalPendingTTL = d
		return nil
	}},
	{"approvalRetention", "APPROVAL_RETENTION", "approval-retention", "how long a human approval is kept past its expiry before it is deleted (a Go duration, 1h to 87600h; 0 keeps every approval forever)", "720h", func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d != 0 && (d < time.Hour || d > 87600*time.Hour) {
			return fmt.Errorf("%q: expected 0 (keep forever) or a duration from 1h to 87600h, such as 720h", v)
		}
		c.ApprovalRetention = d
		return nil
	}},
	{"rateLimitRpm", "RATE_LIMIT_RPM", "rate-limit-rpm", "gateway requests per minute per client IP (0 = off)", "600", intIn(func(c *Config) *int { return &c.RateLimitRPM }, 0, 10_000_000)},
	{"logLevel", "LOG_LEVEL", "log-level", "debug, info, warn or error", "info", func(c *Config, v string) error {
		switch v {
		case "debug", "info", "warn", "error":
			c.LogLevel = v
			return nil
		}
		return fmt.Errorf("%q: expected debug, info, warn or error", v)
	}},
	{"gcHeapBudgetMb", "GC_HEAP_BUDGET_MB", "gc-heap-budget-mb", "the heap (MiB) within which the garbage collector runs less often than Go's default, up to GOGC=400; past it GOGC=100 (0 = Go's default; not used when GOGC is set)", "64", intIn(func(c *Config) *int { return &c.GCHeapBudgetMB }, 0, 1<<20)},
	{"gcMemoryLimitPercent", "GC_MEMORY_LIMIT_PERCENT", "gc-memory-limit-percent", "the soft memory limit (as GOMEMLIMIT) serve sets, as a percentage of its cgroup's memory limit (a container's or a systemd unit's) when it has one (0 = none; not used when GOMEMLIMIT is set)", "90", intIn(func(c *Config) *int { return &c.GCMemoryLimitPercent }, 0, 100)},
	{"logFormat", "LOG_FORMAT", "log-format", "text, json, or auto: text when stderr is a terminal, else json", "auto", func(c *Config, v string) error {
		switch v {
		case "auto", "text", "json":
			c.LogFormat = v
			return nil
		}
		return fmt.Errorf("%q: expected text, json or auto", v)
	}},
}

// defaultRedact is AUDIT_REDACT's default: audit.DefaultRedact.
const defaultRedact = "password,passwd,secret,client_secret,token,access_token,refresh_token,api_key,apikey,authorization,cookie,private_key,credentials"

// Bounds of AUDIT_REDACT.
const (
	maxRedactNames = 64
	maxRedactName  = 128
)

// redactList reads AUDIT_REDACT: names, comma-separated, each a JSON
// member name without control characters or surrounding spaces.
func redactList(c *Config, v string) error {
	var names []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			return fmt.Errorf("%q: an empty name (expected comma-separated argument names)", v)
		case len(n) > maxRedactName || !utf8.ValidString(n) || strings.ContainsFunc(n, unicode.IsControl):
			return fmt.Errorf("%q: expected names of at most %d bytes of text", n, maxRedactName)
		}
		names = append(names, n)
	}
	if len(names) > maxRedactNames {
		return fmt.Errorf("%d names: at most %d", len(names), maxRedactNames)
	}
	c.AuditRedact = names
	return nil
}

// Flag describes a command-line flag for the CLI to register.
type Flag struct{ Name, Env, Usage, Default string }

// Flags lists the flags `meshguard serve` accepts, one per setting.
func Flags() []Flag {
	settings := allSettings()
	out := make([]Flag, len(settings))
	for i, s := range settings {
		out[i] = Flag{Name: s.flag, Env: s.env, Usage: s.usage, Default: s.def}
	}
	return out
}

// Load builds the configuration: defaults, then the file at path (if
// path is not empty), then getenv, then flags (flag name → value, only the
// flags the user set).
func Load(path string, getenv func(string) string, flags map[string]string) (*Config, error) {
	c := &Config{}
	settings := allSettings()
	for _, s := range settings {
		if err := s.set(c, s.def); err != nil {
			return nil, fmt.Errorf("%w: default of %s: %w", ErrInvalid, s.key, err) // a bug
		}
	}
	if path != "" {
		if err := c.loadFile(path); err != nil {
			return nil, err
		}
	}
	for _, s := range settings {
		if v, ok := lookup(getenv, s.env); ok {
			if err := s.set(c, v); err != nil {
				return nil, fmt.Errorf("%w: environment variable %s: %w", ErrInvalid, s.env, err)
			}
		}
	}
	for _, s := range settings {
		if v, ok := flags[s.flag]; ok {
			if err := s.set(c, v); err != nil {
				return nil, fmt.Errorf("%w: flag --%s: %w", ErrInvalid, s.flag, err)
			}
		}
	}
	if err := c.checkAlerts(); err != nil {
		return nil, err
	}
	if err := c.checkTLS(); err != nil {
		return nil, err
	}
	if c.ProxyTarget != "" && c.ProxyServices {
		// Strict: which upstream a request reaches must not depend on
		// which of the two wins.
		return nil, fmt.Errorf("%w: PROXY_TARGET and PROXY_SERVICES: set one: the gateway forwards to one upstream or to the catalogue's services", ErrInvalid)
	}
	return c, nil
}

// allSettings are the core settings, then the ALERT_* ones, then the TLS ones.
func allSettings() []setting {
	return append(append(append([]setting{}, settings...), alertSettings...), tlsSettings...)
}

// lookup treats an empty variable as unset, as most tools do.
func lookup(getenv func(string) string, name string) (string, bool) {
	if getenv == nil {
		return "", false
	}
	v := getenv(name)
	return v, v != ""
}

// loadFile reads the YAML config file strictly.
func (c *Config) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: --config: %w", ErrInvalid, err)
	}
	if len(data) > 1<<20 {
		return fmt.Errorf("%w: %s: larger than 1 MiB", ErrInvalid, path)
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	if len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%w: %s:%d: expected a mapping of settings", ErrInvalid, path, m.Line)
	}
	settings := allSettings()
	byKey := make(map[string]setting, len(settings))
	for _, s := range settings {
		byKey[s.key] = s
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if seen[k.Value] {
			return fmt.Errorf("%w: %s:%d: %s: duplicate key", ErrInvalid, path, k.Line, k.Value)
		}
		seen[k.Value] = true
		if k.Value == "routes" {
			if err := decodeRoutes(v, &c.Routes); err != nil {
				return fmt.Errorf("%w: %s:%d: routes: %w", ErrInvalid, path, v.Line, err)
			}
			continue
		}
		s, ok := byKey[k.Value]
		if !ok {
			return fmt.Errorf("%w: %s:%d: unknown key %q (expected one of %s, routes)", ErrInvalid, path, k.Line, k.Value, keyList())
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			return fmt.Errorf("%w: %s:%d: %s: expected a single value", ErrInvalid, path, v.Line, k.Value)
		}
		if err := s.set(c, v.Value); err != nil {
			return fmt.Errorf("%w: %s:%d: %s: %w", ErrInvalid, path, v.Line, k.Value, err)
		}
	}
	return nil
}

func decodeRoutes(n *yaml.Node, dst *[]engine.Route) error {
	dec := func(v *yaml.Node) error {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(v); err != nil {
			return err
		}
		d := yaml.NewDecoder(&buf)
		d.KnownFields(true) // unknown route keys are errors
		return yamldoc.Decode(d, dst)
	}
	if n.Kind != yaml.SequenceNode {
		return errors.New("expected a list of {host, method, path, action, protocol, service}")
	}
	if err := dec(n); err != nil {
		return err
	}
	// Refused when read, naming the entry and key, not when the engine is
	// built from them.
	return engine.ValidateRoutes(*dst)
}

func keyList() string {
	settings := allSettings()
	keys := make([]string, len(settings))
	for i, s := range settings {
		keys[i] = s.key
	}
	return strings.Join(keys, ", ")
}

// CheckTraceURL validates CONSOLE_TRACE_URL: empty (no link), or an
// absolute http(s) URL with a host, no user info, and {traceId} where the
// id goes (the console puts it there path-escaped).
func CheckTraceURL(v string) error {
	if v == "" {
		return nil
	}
	if !strings.Contains(v, "{traceId}") {
		return fmt.Errorf("%q: expected {traceId} where the trace id goes", v)
	}
	u, err := url.Parse(strings.ReplaceAll(v, "{traceId}", "0"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q: expected an http:// or https:// URL with a host and no user info", v)
	}
	return nil
}
