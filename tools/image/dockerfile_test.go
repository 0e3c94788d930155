package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	op   string // upper case
	args string
}

// readDockerfile returns the instructions of each stage (FROM starts one).
func readDockerfile(t *testing.T, file string) [][]instruction {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		op, args, _ := strings.Cut(line, " ")
		in := instruction{op: strings.ToUpper(op), args: strings.TrimSpace(args)}
		if in.op == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and a final one", file, len(stages))
	}
	return stages
}

// words splits like a shell would for ENV, LABEL and EXPOSE: on blanks,
// double quotes grouping and removed.
func words(s string) []string {
	var out []string
	var w strings.Builder
	quoted, started := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, started = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if started {
				out = append(out, w.String())
			}
			w.Reset()
			started = false
		default:
			w.WriteRune(r)
			started = true
		}
	}
	if started {
		out = append(out, w.String())
	}
	return out
}

func pairs(s string) map[string]string {
	m := map[string]string{}
	for _, w := range words(s) {
		k, v, _ := strings.Cut(w, "=")
		m[k] = v
	}
	return m
}

// TestDockerfileMatchesBuilder: no Docker engine runs here, so the root
// Dockerfile is read and held to the table the built archive is held to
// (want_test.go), and its go build to the Makefile's flags.
func TestDockerfileMatchesBuilder(t *testing.T) {
	root := filepath.Join("..", "..")
	stages := readDockerfile(t, filepath.Join(root, "Dockerfile"))
	final := stages[len(stages)-1]
	env, labels := map[string]string{}, map[string]string{}
	var user, ports []string
	var entrypoint, cmd []string
	var copies []string
	for _, in := range final {
		switch in.op {
		case "USER":
			user = append(user, in.args)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %s: not exec form: %v", in.args, err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(in.args), &cmd); err != nil {
				t.Fatalf("CMD %s: not exec form: %v", in.args, err)
			}
		case "EXPOSE":
			for _, p := range words(in.args) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				ports = append(ports, p)
			}
		case "ENV":
			for k, v := range pairs(in.args) {
				env[k] = v
			}
		case "LABEL":
			for k, v := range pairs(in.args) {
				labels[k] = v
			}
		case "COPY":
			copies = append(copies, in.args)
		}
	}
	if !slices.Equal(user, []string{want.user}) {
		t.Errorf("USER %q, want %q once", user, want.user)
	}
	if !slices.Equal(entrypoint, want.entrypoint) || !slices.Equal(cmd, want.cmd) {
		t.Errorf("ENTRYPOINT %q CMD %q, want %q %q", entrypoint, cmd, want.entrypoint, want.cmd)
	}
	if !sameSet(ports, want.ports) {
		t.Errorf("EXPOSE %v, want %v", ports, want.ports)
	}
	for k, v := range want.env {
		if env[k] != v {
			t.Errorf("ENV %s=%q, want %q", k, env[k], v)
		}
	}
	for k, v := range want.labels {
		if labels[k] != v {
			t.Errorf("LABEL %s=%q, want %q", k, labels[k], v)
		}
	}
	for _, k := range stampedLabels {
		if !regexp.MustCompile(`^\$\{[A-Z]+\}$`).MatchString(labels[k]) {
			t.Errorf("LABEL %s=%q, want it set from a build argument", k, labels[k])
		}
	}
	if labels["org.opencontainers.image.version"] != "${VERSION}" {
		t.Errorf("the version label is %q, want ${VERSION}, the argument go build stamps", labels["org.opencontainers.image.version"])
	}
	for _, c := range []struct{ dest, flag string }{
		{want.binary, ""},
		{want.dataDir, "--chown=" + want.user},
		{want.policies, ""},
	} {
		found := false
		for _, args := range copies {
			w := words(args)
			found = found || w[len(w)-1] == c.dest && strings.Contains(args, c.flag)
		}
		if !found {
			t.Errorf("no COPY %s to %s in %q", c.flag, c.dest, copies)
		}
	}

	// The build stage compiles as `make image` does.
	var build string
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st {
			if in.op == "RUN" && strings.Contains(in.args, "go build") {
				build = in.args
			}
		}
	}
	if build == "" {
		t.Fatal("no RUN go build in the build stages")
	}
	for _, flag := range append([]string{"CGO_ENABLED=0", "GOOS=linux", "-trimpath", "./cmd/meshguard", "-o /out/meshguard"}, makefileLdflags(t, root)...) {
		if !strings.Contains(build, flag) {
			t.Errorf("the Dockerfile's go build lacks %q: %s", flag, build)
		}
	}
}

// makefileLdflags lists the Makefile's LDFLAGS variables as "-X name=":
// a variable `make build` stamps that the Dockerfile did not would make
// `docker run IMAGE --version` say less than the binary from make.
func makefileLdflags(t *testing.T, root string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(raw)) {
		if !regexp.MustCompile(`^LDFLAGS\s*[:?]?=`).MatchString(line) {
			continue
		}
		for _, m := range regexp.MustCompile(`-X\s+([\w./-]+)=`).FindAllStringSubmatch(line, -1) {
			out = append(out, "-X "+m[1]+"=")
		}
	}
	if len(out) == 0 {
		t.Fatal("the Makefile's LDFLAGS stamp nothing (-X)")
	}
	return out
}
