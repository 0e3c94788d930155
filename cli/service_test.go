package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceCommands: services applied through the API join SERVICES_FILE's
// in the catalogue the xDS server serves; the file's own are not theirs to
// change; a bad catalogue is refused naming the entry and field.
func TestServiceCommands(t *testing.T) {
	l := newLive(t)
	out := l.must(t, "service", "apply", "../examples/services.yaml")
	if strings.Count(out, "✓ service") != 3 {
		t.Fatalf("apply:\n%s", out)
	}
	if l.pushed.Load() != 3 {
		t.Fatalf("%d catalogues pushed, want one a service", l.pushed.Load())
	}
	out = l.must(t, "service", "list")
	for _, want := range []string{"from-file", "file", "researcher", "researcher.mesh", "verified", "stored", "crm"} {
		if !strings.Contains(out, want) {
			t.Fatalf("list lacks %q:\n%s", want, out)
		}
	}
	var e struct {
		Name    string `json:"name"`
		MinTier string `json:"minTier"`
		Source  string `json:"source"`
		Routes  []struct {
			Action string `json:"action"`
		} `json:"routes"`
	}
	// show prints as agent show does: "key: value" lines, JSON with --json.
	golden(t, "service-show.golden", l.must(t, "service", "show", "researcher"))
	if err := json.Unmarshal([]byte(l.must(t, "service", "show", "researcher", "--json")), &e); err != nil ||
		e.MinTier != "verified" || e.Source != "stored" || len(e.Routes) != 2 {
		t.Fatalf("show: %+v %v", e, err)
	}
	l.must(t, "service", "delete", "crm")
	if code, _, stderr := l.mg(t, "service", "show", "crm"); code != ExitFailure || !strings.Contains(stderr, "404") {
		t.Fatalf("show after delete: %d %s", code, stderr)
	}
	// The file's service belongs to the file.
	if code, _, stderr := l.mg(t, "service", "delete", "from-file"); code != ExitFailure || !strings.Contains(stderr, "SERVICES_FILE") {
		t.Fatalf("deleting the file's service: %d %s", code, stderr)
	}
	// A host the file already uses is refused by the server, naming it.
	clash := filepath.Join(t.TempDir(), "clash.yaml")
	if err := os.WriteFile(clash, []byte("services:\n  - {name: other, hosts: [file.mesh], port: 80, endpoints: [\"10.0.0.1:80\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := l.mg(t, "service", "apply", clash); code != ExitUsage || !strings.Contains(stderr, "✗ service other: hosts[0]: \"file.mesh\" already belongs to service \"from-file\"\n") {
		t.Fatalf("a clashing host: %d %s", code, stderr)
	}
	// A broken file is refused before anything is sent.
	before := l.requests.Load()
	if code, _, stderr := l.mg(t, "service", "apply", "../examples/agents.yaml"); code != ExitUsage || !strings.Contains(stderr, "agents") {
		t.Fatalf("not a catalogue: %d %s", code, stderr)
	}
	if l.requests.Load() != before {
		t.Fatal("a broken file reached the server")
	}
	// A bad catalogue shows every problem at its line, and sends nothing.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("services:\n"+
		"  - {name: one, hosts: [one.mesh], port: 0, endpoints: [\"10.0.0.1:80\"]}\n"+
		"  - {name: two, hosts: [one.mesh], port: 80, endpoints: [\"10.0.0.1\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := l.mg(t, "service", "apply", bad)
	for _, want := range []string{
		"✗ " + bad + ":2: services[0] (one): port: 0: expected 1 to 65535\n",
		"✗ " + bad + ":3: services[1] (two): hosts[0]: \"one.mesh\" already belongs to service \"one\"\n",
		"✗ " + bad + ":3: services[1] (two): endpoints[0]: \"10.0.0.1\": expected host:port\n",
		"3 errors in " + bad,
	} {
		if code != ExitUsage || !strings.Contains(stderr, want) {
			t.Fatalf("a bad catalogue: %d, want %q in\n%s", code, want, stderr)
		}
	}
	if l.requests.Load() != before {
		t.Fatal("a bad catalogue reached the server")
	}
}
