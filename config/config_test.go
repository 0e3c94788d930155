package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestPrecedence: flags over the environment over the file over the
// defaults, checked on every field of the result.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "meshguard.yaml")
	if err := os.WriteFile(file, []byte("port: 4000\ngrpcPort: 4001\nmode: audit\ndataDir: /var/lib/mg\nlogLevel: warn\nlogFormat: text\nalertRateLimit: 20\nanswerExtras: 'tier, chain'\n"+
		"routes:\n  - {host: 'api.*', method: POST, path: '/send/*', action: 'write:email'}\n  - {path: /mcp, protocol: mcp, service: mail}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file,
		env(map[string]string{"PORT": "5000", "POLICIES_DIR": "/etc/mg/policies", "LOG_LEVEL": "debug", "ALERT_RATE_LIMIT": "30"}),
		map[string]string{"port": "6000", "mode": "enforce", "alert-rate-limit": "40"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Host:        "127.0.0.1",                            // default
		Port:        6000,                                   // flag over environment over file
		GRPCPort:    4001,                                   // file over default
		Mode:        engine.ModeEnforce,                     // flag over file
		Answer:      engine.AnswerTier | engine.AnswerChain, // file
		DataDir:     "/var/lib/mg",                          // file
		PoliciesDir: "/etc/mg/policies",                     // environment over default
		LogLevel:    "debug",                                // environment over file
		LogFormat:   "text",                                 // file over default
		Routes:      []engine.Route{{Host: "api.*", Method: "POST", Path: "/send/*", Action: "write:email"}, {Path: "/mcp", Protocol: "mcp", Service: "mail"}},
		// The rest are defaults.
		ListenerPort: 10000, AuditRetentionDays: 90, AuditFlushMs: 50, AuditCheckpointSeconds: 60,
		TraceDenials: "sampled", AuditEnabled: true, Console: true, RateLimitRPM: 600, AuditRedact: audit.DefaultRedact(),
		GCHeapBudgetMB:       64,
		GCMemoryLimitPercent: 90,
		ApprovalPendingTTL:   24 * time.Hour, ApprovalRetention: 720 * time.Hour,
		Alerts: Alerts{On: alert.Triggers{}, SMTPPort: 587, RateLimit: 40},
		TLS:    TLS{GRPC: true},
	}
	if diff := changed(leafFields(reflect.TypeFor[Config](), "", nil), c, &want); len(diff) > 0 {
		slices.Sort(diff)
		t.Fatalf("fields not as expected: %v\ngot  %+v\nwant %+v", diff, *c, want)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "127.0.0.1" || c.Port != 3100 || c.GRPCPort != 3101 || c.Mode != engine.ModeEnforce || c.DataDir != "./data" ||
		c.PoliciesDir != "./policies" || c.RateLimitRPM != 600 || c.AuditRetentionDays != 90 || c.LogLevel != "info" {
		t.Fatalf("defaults: %+v", *c)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		flags map[string]string
		want  string
	}{
		{"unknown file key", "prot: 3100", nil, nil, `c.yaml:1: unknown key "prot"`},
		{"bad port in file", "port: 70000", nil, nil, "c.yaml:1: port: \"70000\": expected a whole number from 0 to 65535"},
		{"negative port", "", map[string]string{"GRPC_PORT": "-1"}, nil, "GRPC_PORT: \"-1\": expected a whole number from 0 to 65535"},
		{"list for a scalar", "port: [1]", nil, nil, "port: expected a single value"},
		{"unknown route key", "routes:\n  - {path: /x, action: 'a:b', verb: GET}", nil, nil, "routes:"},
		{"unknown route protocol", "routes:\n  - {path: /mcp, protocol: grpc, service: mail}", nil, nil, `c.yaml:2: routes: routes[0].protocol: "grpc": expected mcp or a2a`},
		{"route protocol without a service", "routes:\n  - {path: /x, action: 'a:b'}\n  - {path: /mcp, protocol: mcp}", nil, nil, "c.yaml:2: routes: routes[1].service: required with protocol mcp"},
		{"route service without a protocol", "routes:\n  - {path: /mcp, action: 'a:b', service: mail}", nil, nil, `c.yaml:2: routes: routes[0].service: "mail" without a protocol`},
		{"route service that is no DNS label", "routes:\n  - {path: /a2a, protocol: a2a, service: 'Planner Agent'}", nil, nil, `c.yaml:2: routes: routes[0].service: "Planner Agent": expected a DNS label`},
		{"route without an action or protocol", "routes:\n  - {path: /x}", nil, nil, "c.yaml:2: routes: routes[0].action"},
		{"a route merge key the YAML decoder panics on", "routes:\n  - &r 0\n  - {<<,0,[]}", nil, nil, "malformed YAML"},
		{"bad mode in env", "", map[string]string{"MODE": "permissive"}, nil, `environment variable MODE: "permissive": expected enforce or audit`},
		{"unknown answer part", "", map[string]string{"ANSWER_EXTRAS": "tier,agent-tier"}, nil, `environment variable ANSWER_EXTRAS: unknown answer part "agent-tier" (expected agent-name, tier, chain, decision-id, response-headers, metadata, or all)`},
		{"answer part named twice", "answerExtras: chain,chain", nil, nil, `answer part "chain" named twice`},
		{"answer part in upper case", "", nil, map[string]string{"answer-extras": "Tier"}, `flag --answer-extras: unknown answer part "Tier"`},
		{"bad trace denials", "", map[string]string{"TRACE_DENIALS": "sometimes"}, nil, `environment variable TRACE_DENIALS: "sometimes": expected sampled or always`},
		{"bad rpm in env", "", map[string]string{"RATE_LIMIT_RPM": "-5"}, nil, "environment variable RATE_LIMIT_RPM"},
		{"negative heap budget", "", map[string]string{"GC_HEAP_BUDGET_MB": "-1"}, nil, `GC_HEAP_BUDGET_MB: "-1": expected a whole number from 0 to 1048576`},
		{"heap budget past 1 TiB", "", map[string]string{"GC_HEAP_BUDGET_MB": "1048577"}, nil, `GC_HEAP_BUDGET_MB: "1048577": expected a whole number from 0 to 1048576`},
		{"heap budget past int64", "", map[string]string{"GC_HEAP_BUDGET_MB": "99999999999999999999"}, nil, `GC_HEAP_BUDGET_MB: "99999999999999999999": expected a whole number`},
		{"heap budget in GB", "", map[string]string{"GC_HEAP_BUDGET_MB": "1GB"}, nil, `GC_HEAP_BUDGET_MB: "1GB": expected a whole number`},
		{"memory limit past 100%", "", map[string]string{"GC_MEMORY_LIMIT_PERCENT": "101"}, nil, `GC_MEMORY_LIMIT_PERCENT: "101": expected a whole number from 0 to 100`},
		{"negative memory limit", "", map[string]string{"GC_MEMORY_LIMIT_PERCENT": "-10"}, nil, `GC_MEMORY_LIMIT_PERCENT: "-10": expected a whole number from 0 to 100`},
		{"memory limit as a fraction", "", map[string]string{"GC_MEMORY_LIMIT_PERCENT": "0.9"}, nil, `GC_MEMORY_LIMIT_PERCENT: "0.9": expected a whole number`},
		{"bad flag", "", nil, map[string]string{"grpc-port": "x"}, "flag --grpc-port"},
		{"short admin token", "", map[string]string{"ADMIN_TOKEN": "short"}, nil, "ADMIN_TOKEN: must be at least 16"},
		{"short jwt secret", "", map[string]string{"JWT_SECRET": "short"}, nil, "JWT_SECRET: must be at least 32 bytes"},
		{"trace URL without {traceId}", "", map[string]string{"CONSOLE_TRACE_URL": "http://jaeger:16686/trace/"}, nil, "CONSOLE_TRACE_URL: \"http://jaeger:16686/trace/\": expected {traceId}"},
		{"trace URL of another scheme", "", map[string]string{"CONSOLE_TRACE_URL": "javascript:alert({traceId})"}, nil, "CONSOLE_TRACE_URL: \"javascript:alert({traceId})\": expected an http"},
		{"trace URL with credentials", "", map[string]string{"CONSOLE_TRACE_URL": "http://u:p@jaeger/trace/{traceId}"}, nil, "CONSOLE_TRACE_URL"},
		{"console not a bool", "", map[string]string{"CONSOLE": "maybe"}, nil, "CONSOLE: \"maybe\": expected true or false"},
		{"bad proxy target", "", map[string]string{"PROXY_TARGET": "ftp://x"}, nil, "PROXY_TARGET: expected an http"},
		{"proxy target with credentials", "", map[string]string{"PROXY_TARGET": "http://u:p@x"}, nil, "PROXY_TARGET"},
		{"proxy target with a query", "", map[string]string{"PROXY_TARGET": "http://x/?a=b"}, nil, "PROXY_TARGET"},
		{"proxy target and proxy services", "proxyTarget: http://x", map[string]string{"PROXY_SERVICES": "true"}, nil, "PROXY_TARGET and PROXY_SERVICES: set one"},
		{"proxy services not a boolean", "", nil, map[string]string{"proxy-services": "on"}, `flag --proxy-services: "on": expected true or false`},
		{"http address without a port", "", map[string]string{"XDS_HTTP_ADDRESS": "meshguard"}, nil, "XDS_HTTP_ADDRESS"},
		{"wasm filter that is no .wasm", "", map[string]string{"WASM_FILTER_PATH": "/etc/envoy/filter.so"}, nil, "WASM_FILTER_PATH"},
		{"database url not postgres", "", map[string]string{"DATABASE_URL": "mysql://localhost/mg"}, nil, "DATABASE_URL: expected a postgres://"},
		{"database url without host", "", map[string]string{"DATABASE_URL": "postgresql:///mg"}, nil, "DATABASE_URL: expected a postgres://"},
		{"log level", "logLevel: loud", nil, nil, "logLevel"},
		{"log format in the file", "logFormat: yaml", nil, nil, `logFormat: "yaml": expected text, json or auto`},
		{"log format in env", "", map[string]string{"LOG_FORMAT": "JSON"}, nil, `environment variable LOG_FORMAT: "JSON": expected text, json or auto`},
		{"log format flag", "", nil, map[string]string{"log-format": "logfmt"}, `flag --log-format: "logfmt": expected text, json or auto`},
		{"misspelt alert trigger", "", map[string]string{"ALERT_ON": "deny,denied"}, nil, `environment variable ALERT_ON: invalid alert triggers: "denied"`},
		{"webhook that is no URL", "", map[string]string{"ALERT_WEBHOOK_URL": "hooks.example.com/x"}, nil, "ALERT_WEBHOOK_URL: expected an http"},
		{"slack webhook that is no URL", "", map[string]string{"ALERT_SLACK_WEBHOOK": "ftp://x"}, nil, "ALERT_SLACK_WEBHOOK"},
		{"bad recipient", "", map[string]string{"ALERT_EMAIL_TO": "ops@example.com, not an address"}, nil, "ALERT_EMAIL_TO"},
		{"email without a server", "", map[string]string{"ALERT_EMAIL_FROM": "mg@example.com", "ALERT_EMAIL_TO": "ops@example.com"}, nil, "ALERT_SMTP_HOST: required"},
		{"password without a user", "", map[string]string{"ALERT_SMTP_PASS": "x"}, nil, "ALERT_SMTP_USER: required"},
		{"rate limit zero", "", map[string]string{"ALERT_RATE_LIMIT": "0"}, nil, "ALERT_RATE_LIMIT"},
		{"bad smtp port", "", map[string]string{"ALERT_SMTP_PORT": "0"}, nil, "ALERT_SMTP_PORT"},
		{"duplicate key", "port: 1\nport: 2", nil, nil, "duplicate key"},
		{"audit arguments not a boolean", "", map[string]string{"AUDIT_ARGUMENTS": "yes"}, nil, `environment variable AUDIT_ARGUMENTS: "yes": expected true or false`},
		{"an empty redacted name", "", map[string]string{"AUDIT_REDACT": "password,,token"}, nil, `environment variable AUDIT_REDACT: "password,,token": an empty name`},
		{"a redacted name with a control character", "auditRedact: \"pass\\u0000word\"", nil, nil, `auditRedact: "pass\x00word": expected names of at most 128 bytes of text`},
		{"a long redacted name", "", nil, map[string]string{"audit-redact": strings.Repeat("n", 129)}, "flag --audit-redact"},
		{"approval pending ttl too short", "", map[string]string{"APPROVAL_PENDING_TTL": "30s"}, nil, `environment variable APPROVAL_PENDING_TTL: "30s": expected a duration from 1m to 720h`},
		{"approval pending ttl in days", "approvalPendingTtl: 2d", nil, nil, `approvalPendingTtl: "2d": expected a duration`},
		{"approval pending ttl too long", "", nil, map[string]string{"approval-pending-ttl": "721h"}, "flag --approval-pending-ttl"},
		{"approval retention too short", "", map[string]string{"APPROVAL_RETENTION": "59m"}, nil, `environment variable APPROVAL_RETENTION: "59m": expected 0 (keep forever) or a duration from 1h to 87600h`},
		{"approval retention too long", "", nil, map[string]string{"approval-retention": "87601h"}, "flag --approval-retention"},
		{"approval retention negative", "approvalRetention: -1h", nil, nil, `approvalRetention: "-1h"`},
		{"approval retention in days", "", map[string]string{"APPROVAL_RETENTION": "30d"}, nil, "APPROVAL_RETENTION"},
		{"too many redacted names", "", map[string]string{"AUDIT_REDACT": strings.Repeat("n,", 64) + "n"}, nil, "AUDIT_REDACT: 65 names: at most 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = write(tc.file)
			}
			_, err := Load(path, env(tc.env), tc.flags)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAuditArgumentsSettings: recording arguments is off by default, the
// default redaction list is the audit writer's, and AUDIT_REDACT replaces
// it (trimmed).
func TestAuditArgumentsSettings(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ApprovalPendingTTL != 24*time.Hour {
		t.Fatalf("APPROVAL_PENDING_TTL defaults to %v, want 24h", c.ApprovalPendingTTL)
	}
	if c.ApprovalRetention != 720*time.Hour {
		t.Fatalf("APPROVAL_RETENTION defaults to %v, want 720h", c.ApprovalRetention)
	}
	if c, err := Load("", env(map[string]string{"APPROVAL_RETENTION": "0"}), nil); err != nil || c.ApprovalRetention != 0 {
		t.Fatalf("APPROVAL_RETENTION=0: %v, %v; want 0 (keep forever)", c.ApprovalRetention, err)
	}
	if c.AuditArguments || !slices.Equal(c.AuditRedact, audit.DefaultRedact()) {
		t.Fatalf("defaults: arguments %v, redact %v (want off, %v)", c.AuditArguments, c.AuditRedact, audit.DefaultRedact())
	}
	c, err = Load("", env(map[string]string{"AUDIT_ARGUMENTS": "true", "AUDIT_REDACT": " ssn , card_number"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.AuditArguments || !slices.Equal(c.AuditRedact, []string{"ssn", "card_number"}) {
		t.Fatalf("set: arguments %v, redact %q", c.AuditArguments, c.AuditRedact)
	}
}

func TestDatabaseURLAccepted(t *testing.T) {
	for _, v := range []string{"postgres://mg:secret@127.0.0.1:5432/mg?sslmode=disable", "postgresql://db.internal/mg"} {
		c, err := Load("", func(k string) string {
			if k == "DATABASE_URL" {
				return v
			}
			return ""
		}, nil)
		if err != nil || c.DatabaseURL != v {
			t.Fatalf("DATABASE_URL=%s: %v, %q", v, err, c.DatabaseURL)
		}
	}
}

// TestListenPortZero: PORT=0 and GRPC_PORT=0 ask for any free port (serve
// logs the ones it got), as the SDKs' conformance runners start serve.
func TestListenPortZero(t *testing.T) {
	c, err := Load("", env(map[string]string{"PORT": "0", "GRPC_PORT": "0"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 0 || c.GRPCPort != 0 {
		t.Errorf("Port, GRPCPort = %d, %d; want 0, 0", c.Port, c.GRPCPort)
	}
}
