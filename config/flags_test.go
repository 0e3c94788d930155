package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// fileOnly are the fields of Config no flag or variable sets: structured,
// so only the file can hold them (TestPrecedence loads them).
var fileOnly = map[string]bool{"Routes": true}

// leafFields lists Config's settings by path ("Alerts.SMTPPort"): its
// fields, and those of the structs it groups settings in.
func leafFields(t reflect.Type, prefix string, index []int) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		idx := append(append([]int{}, index...), i)
		if f.Type.Kind() == reflect.Struct {
			maps.Copy(out, leafFields(f.Type, prefix+f.Name+".", idx))
			continue
		}
		out[prefix+f.Name] = idx
	}
	return out
}

// changed lists the fields of Config that differ between a and b.
func changed(fields map[string][]int, a, b *Config) []string {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	var out []string
	for name, idx := range fields {
		if !reflect.DeepEqual(va.FieldByIndex(idx).Interface(), vb.FieldByIndex(idx).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

// probes are values tried on every setting: each setting accepts at least
// one that differs from its default. A new setting none of them fits
// fails TestFlagsCoverEverySetting until one is added here.
var probes = []string{"2", "true", "false", "audit", "always", "debug", "json", "verify-if-given", "http", "all",
	"/probe/filter.wasm", "https://probe.test/hook", "https://probe.test/trace/{traceId}", "postgres://db.probe.test/mg", "probe.test:2", "ops@probe.test",
	strings.Repeat("k", 32), "90m"}

// probeBase makes every probe loadable on its own: the settings that must
// come together are already there.
var probeBase = map[string]string{
	"TLS_CERT_FILE": "/base/tls.crt", "TLS_KEY_FILE": "/base/tls.key", "TLS_CLIENT_CA_FILE": "/base/ca.crt",
	"XDS_ENVOY_CA_FILE": "/base/envoy-ca.crt", "XDS_ENVOY_CERT_FILE": "/base/envoy.crt", "XDS_ENVOY_KEY_FILE": "/base/envoy.key",
	"ALERT_EMAIL_FROM": "mg@base.test", "ALERT_EMAIL_TO": "ops@base.test", "ALERT_SMTP_HOST": "smtp.base.test",
	"ALERT_SMTP_USER": "mg", "ALERT_WEBHOOK_URL": "https://hooks.base.test/x",
}

// TestFlagsCoverEverySetting: every field of Config is set by a flag of
// Flags() (the ones `serve` registers), whose environment variable and
// file key — spelt from the same name — set the same field; and every
// variable is documented in docs/.
// A setting added to Config without a flag, or without docs, fails here.
func TestFlagsCoverEverySetting(t *testing.T) {
	fields := leafFields(reflect.TypeFor[Config](), "", nil)
	for name := range fileOnly {
		delete(fields, name)
	}
	base, err := Load("", env(probeBase), nil)
	if err != nil {
		t.Fatal(err)
	}
	docs := readDocs(t)
	covered := map[string]string{} // field → flag
	names := map[string]bool{}
	dir := t.TempDir()
	for _, f := range Flags() {
		if f.Name == "" || f.Env == "" || f.Usage == "" || names[f.Name] {
			t.Errorf("flag %+v: a name, a variable and a usage, each once", f)
			continue
		}
		names[f.Name] = true
		if want := strings.ToLower(strings.ReplaceAll(f.Env, "_", "-")); f.Name != want {
			t.Errorf("flag --%s of %s: want --%s, the variable's name", f.Name, f.Env, want)
		}
		if !regexp.MustCompile("`" + f.Env + "[`=]").MatchString(docs) {
			t.Errorf("%s is documented nowhere in docs/*.md (as `%s` or `%s=…`)", f.Env, f.Env, f.Env)
		}
		var sets []string
		for _, v := range probes {
			byFlag, err := Load("", env(probeBase), map[string]string{f.Name: v})
			if err != nil {
				continue
			}
			byEnv, envErr := Load("", env(mergeEnv(probeBase, f.Env, v)), nil)
			// The file's value must not be beaten by the base's variable.
			others := maps.Clone(probeBase)
			delete(others, f.Env)
			byFile, fileErr := Load(writeKey(t, dir, fileKey(f.Env), v), env(others), nil)
			if envErr != nil || fileErr != nil || !reflect.DeepEqual(byEnv, byFlag) || !reflect.DeepEqual(byFile, byFlag) {
				t.Errorf("%q: --%s, %s and %s disagree (%v, %v)", v, f.Name, f.Env, fileKey(f.Env), envErr, fileErr)
			}
			sets = append(sets, changed(fields, base, byFlag)...)
		}
		if len(sets) == 0 {
			t.Errorf("--%s (%s) sets no field of Config with any probe value", f.Name, f.Env)
		}
		for _, field := range sets {
			covered[field] = f.Name
		}
	}
	for field := range fields {
		if covered[field] == "" {
			t.Errorf("Config.%s is set by no flag (nor variable): add it to the settings", field)
		}
	}
}

func mergeEnv(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	out[k] = v
	return out
}

// fileKey is a variable's name in the file: DATA_DIR → dataDir.
func fileKey(envName string) string {
	words := strings.Split(strings.ToLower(envName), "_")
	for i := 1; i < len(words); i++ {
		words[i] = strings.ToUpper(words[i][:1]) + words[i][1:]
	}
	return strings.Join(words, "")
}

// writeKey writes a file that sets only key, to v.
func writeKey(t *testing.T, dir, key, v string) string {
	t.Helper()
	p := filepath.Join(dir, key+".yaml")
	if err := os.WriteFile(p, fmt.Appendf(nil, "%s: %q\n", key, v), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readDocs is every page of docs/ together.
func readDocs(t *testing.T) string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md (%v)", err)
	}
	var b strings.Builder
	for _, p := range pages {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}
