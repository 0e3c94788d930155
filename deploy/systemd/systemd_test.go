package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/config"
)

// unit is a unit file's directives: section → key → every value given, in
// order (a key may repeat, as SystemCallFilter does).
type unit map[string]map[string][]string

// parseUnit reads a unit file's [Section] headers and Key=Value lines;
// anything else but comments and blank lines is an error.
func parseUnit(t *testing.T, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.TrimSpace(k) == "" {
				t.Fatalf("line %d: %q is neither a [Section] nor a Key=Value in one", n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUnitHardening: the unit runs serve as its own user with no
// privileges, a read-only system, its state in StateDirectory, and its
// settings from the root-only env file.
func TestUnitHardening(t *testing.T) {
	data, err := os.ReadFile("meshguard.service")
	if err != nil {
		t.Fatal(err)
	}
	svc := parseUnit(t, data)["Service"]
	if svc == nil {
		t.Fatal("no [Service] section")
	}
	tests := []struct {
		key, want string
	}{
		{"User", "meshguard"},
		{"ExecStart", "/usr/local/bin/meshguard serve"},
		{"EnvironmentFile", "/etc/meshguard/meshguard.env"},
		{"Restart", "on-failure"},
		// serve's stdout carries only the generated admin token (logs are
		// on stderr): the journal must not keep a secret.
		{"StandardOutput", "null"},
		{"StateDirectory", "meshguard"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		// Empty: no capability at all (the ports are above 1024).
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := svc[tt.key]
			if !ok {
				t.Fatalf("%s= missing", tt.key)
			}
			// The last assignment is the one in force; an empty one resets a
			// list, so an earlier value must not survive it either.
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s=%q, want exactly one %s=%s", tt.key, got, tt.key, tt.want)
			}
		})
	}
	t.Run("SystemCallFilter", func(t *testing.T) {
		if f := svc["SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
			t.Errorf("SystemCallFilter=%q: want @system-service first (the allow-list; later lines only narrow it)", f)
		}
	})
}

// TestUnitVerifies runs systemd-analyze verify on the unit, which reports
// unknown directives and malformed values (as warnings: any output fails).
// The unit's ExecStart names /usr/local/bin/meshguard, which verify checks
// exists, so the copy verified runs this test's own binary instead.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; TestUnitHardening still checks the directives")
	}
	data, err := os.ReadFile("meshguard.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const exe = "ExecStart=/usr/local/bin/meshguard "
	if !bytes.Contains(data, []byte(exe)) {
		t.Fatalf("no %q line to point at an executable", exe)
	}
	data = bytes.Replace(data, []byte(exe), []byte("ExecStart="+self+" "), 1)
	path := filepath.Join(t.TempDir(), "meshguard.service")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// setting is one KEY=value line of the env file; commented says it is an
// example left off ("#KEY=value").
type setting struct {
	key, value string
	commented  bool
	line       int
}

var settingLine = regexp.MustCompile(`^(#?)([A-Z][A-Z0-9_]*)=(.*)$`)

// parseEnv reads the env file: settings, commented-out settings, and prose
// comments ("# …"); any other line is an error.
func parseEnv(t *testing.T, data []byte) []setting {
	t.Helper()
	var out []setting
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := settingLine.FindStringSubmatch(line); m != nil {
			out = append(out, setting{key: m[2], value: m[3], commented: m[1] == "#", line: n})
			continue
		}
		if line != "" && line != "#" && !strings.HasPrefix(line, "# ") {
			t.Fatalf("meshguard.env:%d: %q is neither KEY=value, #KEY=value nor a \"# \" comment", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEnvFileSettings: every key of meshguard.env, set or commented out,
// is a variable serve reads — a setting of config's table, or an OTEL_*
// variable the telemetry package reads — and the settings it sets load,
// with DATA_DIR the unit's StateDirectory.
func TestEnvFileSettings(t *testing.T) {
	data, err := os.ReadFile("meshguard.env")
	if err != nil {
		t.Fatal(err)
	}
	settings := parseEnv(t, data)
	known := map[string]bool{}
	for _, f := range config.Flags() {
		known[f.Env] = true
	}
	tracing, err := os.ReadFile("../../telemetry/tracing.go")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, s := range settings {
		otel := strings.HasPrefix(s.key, "OTEL_") && bytes.Contains(tracing, []byte(`"`+s.key+`"`))
		if !known[s.key] && !otel {
			t.Errorf("meshguard.env:%d: %s is not a variable serve reads (docs/configuration.md)", s.line, s.key)
		}
		if s.commented {
			continue
		}
		if _, dup := env[s.key]; dup {
			t.Errorf("meshguard.env:%d: %s set twice", s.line, s.key)
		}
		env[s.key] = s.value
	}
	for _, want := range []string{"HOST", "DATA_DIR", "POLICIES_DIR"} {
		if env[want] == "" {
			t.Errorf("meshguard.env does not set %s, which a VM needs (the defaults are for a checkout)", want)
		}
	}
	cfg, err := config.Load("", func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatalf("serve refuses meshguard.env's settings: %v", err)
	}
	unitData, err := os.ReadFile("meshguard.service")
	if err != nil {
		t.Fatal(err)
	}
	state := parseUnit(t, unitData)["Service"]["StateDirectory"]
	if !slices.Equal(state, []string{"meshguard"}) || cfg.DataDir != "/var/lib/meshguard" {
		t.Errorf("DATA_DIR=%s, StateDirectory=%q: the data directory must be the unit's state directory, /var/lib/meshguard", cfg.DataDir, state)
	}
}
