package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const (
	testVersion  = "v9.8.7-imagetest"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testCreated  = "2026-01-02T03:04:05Z"
)

// serverBinary builds cmd/meshguard once per test run, as `make image`
// does: static, -trimpath, version stamped. The host's architecture, so it
// can run here.
var serverBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "meshguard-image-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "meshguard")
	c := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+testVersion, "-o", bin, "./cmd/meshguard")
	c.Dir = filepath.Join("..", "..")
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := c.CombinedOutput(); err != nil {
		return "", &buildError{err: err, out: out}
	}
	return bin, nil
})

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + ": " + string(e.out) }

func needBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("images are built for amd64 and arm64, not %s", runtime.GOARCH)
	}
	bin, err := serverBinary()
	if err != nil {
		t.Fatalf("building meshguard: %v", err)
	}
	return bin
}

func stampArgs() []string {
	return []string{"-version", testVersion, "-revision", testRevision, "-created", testCreated}
}

func buildServerArchive(t *testing.T, out string) {
	t.Helper()
	args := append([]string{"-binary", needBinary(t), "-arch", runtime.GOARCH, "-out", out}, stampArgs()...)
	var log bytes.Buffer
	if err := run(context.Background(), args, &log); err != nil {
		t.Fatalf("image %v: %v\n%s", args, err, log.String())
	}
}

// TestServerImage opens the archive without go-containerregistry and
// checks what a user and Kubernetes rely on: a non-root user that exists,
// the entrypoint, ports, variables and labels, the files and their owners,
// a CA bundle that parses, and a binary that runs and names its version.
func TestServerImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "meshguard-image.tar")
	buildServerArchive(t, out)
	a := readArchive(t, out)
	c := a.config.Config

	if a.config.OS != "linux" || a.config.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", a.config.OS, a.config.Architecture, runtime.GOARCH)
	}
	if a.config.Created != testCreated {
		t.Errorf("created %q, want %q", a.config.Created, testCreated)
	}
	if want := []string{"meshguard:" + testVersion}; !sameSet(a.repoTags, want) {
		t.Errorf("tags %v, want %v", a.repoTags, want)
	}
	if c.User != want.user {
		t.Errorf("User %q, want %q", c.User, want.user)
	}
	if !slices.Equal(c.Entrypoint, want.entrypoint) || !slices.Equal(c.Cmd, want.cmd) {
		t.Errorf("Entrypoint %q Cmd %q, want %q %q", c.Entrypoint, c.Cmd, want.entrypoint, want.cmd)
	}
	if got := mapKeys(c.ExposedPorts); !sameSet(got, want.ports) {
		t.Errorf("ExposedPorts %v, want %v", got, want.ports)
	}
	gotEnv := envMap(c.Env)
	for k, v := range want.env {
		if gotEnv[k] != v {
			t.Errorf("Env %s=%q, want %q", k, gotEnv[k], v)
		}
	}
	checkLabels(t, c.Labels, want.labels)

	files := a.files()
	// The user the image runs as is non-root and named in /etc/passwd and
	// /etc/group: without them, tools that resolve it (and Go's os/user) fail.
	uidText, gidText, _ := strings.Cut(c.User, ":")
	uid, err1 := strconv.Atoi(uidText)
	gid, err2 := strconv.Atoi(gidText)
	if err1 != nil || err2 != nil || uid == 0 || gid == 0 {
		t.Fatalf("User %q is not a numeric non-root uid:gid", c.User)
	}
	if !hasLine(files["/etc/passwd"].content, "nonroot:x:"+uidText+":"+gidText+":") {
		t.Errorf("/etc/passwd has no entry for %s:\n%s", c.User, files["/etc/passwd"].content)
	}
	if !hasLine(files["/etc/group"].content, "nonroot:x:"+gidText+":") {
		t.Errorf("/etc/group has no entry for %s:\n%s", gidText, files["/etc/group"].content)
	}

	for _, f := range []struct {
		path     string
		typeflag byte
		mode     int64
		owner    int
	}{
		{want.binary, '0', 0o755, 0},
		{want.caBundle, '0', 0o644, 0},
		{"/etc/passwd", '0', 0o644, 0},
		{"/etc/group", '0', 0o644, 0},
		{want.policies, '5', 0o755, 0},
		{want.dataDir, '5', 0o700, uid},
	} {
		e, ok := files[f.path]
		if !ok {
			t.Errorf("%s missing", f.path)
			continue
		}
		if e.typeflag != f.typeflag || e.mode != f.mode || e.uid != f.owner || e.gid != f.owner {
			t.Errorf("%v, want type %c mode %o owner %d", e, f.typeflag, f.mode, f.owner)
		}
	}
	// Nothing the user could use to become someone else, nothing it may
	// rewrite but its own directories.
	for _, e := range files {
		if e.mode&0o7000 != 0 || e.mode&0o002 != 0 {
			t.Errorf("%v: setuid, setgid, sticky or world-writable", e)
		}
		if e.uid != 0 && e.name != want.dataDir && e.name != "/home/nonroot" {
			t.Errorf("%v: owned by a non-root user", e)
		}
	}

	checkCABundle(t, files[want.caBundle].content)
	checkStaticBinary(t, files[want.binary].content)
}

// TestServerImageIsReproducible: the same inputs give the same bytes (the
// times come from -created, not the clock), so an image's digest can be
// checked by rebuilding it.
func TestServerImageIsReproducible(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "1.tar"), filepath.Join(dir, "2.tar")
	buildServerArchive(t, first)
	buildServerArchive(t, second)
	a, errA := os.ReadFile(first)
	b, errB := os.ReadFile(second)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds of the same inputs differ (%d and %d bytes)", len(a), len(b))
	}
}

func checkLabels(t *testing.T, got, fixed map[string]string) {
	t.Helper()
	for k, v := range fixed {
		if got[k] != v {
			t.Errorf("label %s=%q, want %q", k, got[k], v)
		}
	}
	stamped := map[string]string{
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": testRevision,
		"org.opencontainers.image.created":  testCreated,
	}
	for _, k := range stampedLabels {
		if got[k] != stamped[k] {
			t.Errorf("label %s=%q, want %q", k, got[k], stamped[k])
		}
	}
}

// checkCABundle: only certificates, every one a CA that parses, and enough
// of them to be a public root store.
func checkCABundle(t *testing.T, b []byte) {
	t.Helper()
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("CA bundle: %d bytes that are not PEM", len(rest))
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			t.Fatalf("CA bundle holds a %s", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("CA bundle certificate %d: %v", n, err)
		}
		if !c.IsCA {
			t.Errorf("CA bundle certificate %q is not a CA", c.Subject)
		}
		n++
	}
	if n < 100 {
		t.Fatalf("CA bundle has %d certificates, a public root store has over 100", n)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		t.Fatal("CA bundle: no certificate a CertPool accepts")
	}
}

// checkStaticBinary: a static executable (FROM scratch has no loader) that
// runs here and prints the version it was stamped with.
func checkStaticBinary(t *testing.T, b []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("binary: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("binary needs a dynamic loader, which the image does not have")
		}
	}
	f.Close()
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary runs on linux only")
	}
	bin := filepath.Join(t.TempDir(), "meshguard")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("meshguard --version: %v: %s", err, out)
	}
	if !strings.HasPrefix(string(out), "meshguard "+testVersion) {
		t.Fatalf("meshguard --version printed %q, want it to name %s", out, testVersion)
	}
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func mapKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func hasLine(b []byte, prefix string) bool {
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}
