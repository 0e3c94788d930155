package proxyauth

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParseIsStrict: each mistake is refused with the entry named.
func TestParseIsStrict(t *testing.T) {
	d := Digest("mgp_a")
	for _, tc := range []struct{ name, doc, want string }{
		{"an unknown key", "proxies: [{name: a, tokens: [\"" + d + "\"], role: admin}]", "role"},
		{"a bad name", "proxies: [{name: \"a b\", tokens: [\"" + d + "\"]}]", "proxies[0]"},
		{"a name twice", "proxies: [{name: a, tokens: [\"" + d + "\"]}, {name: a, identities: [x]}]", "proxies[1] (a): name: listed twice"},
		{"no way in", "proxies: [{name: a}]", "neither identities nor tokens"},
		{"a plain credential instead of a digest", "proxies: [{name: a, tokens: [mgp_a]}]", "expected sha256:"},
		{"a short digest", "proxies: [{name: a, tokens: [\"sha256:abcd\"]}]", "expected sha256:"},
		{"a digest twice", "proxies: [{name: a, tokens: [\"" + d + "\"]}, {name: b, tokens: [\"" + d + "\"]}]", "already listed for a"},
		{"an identity twice", "proxies: [{name: a, identities: [x]}, {name: b, identities: [x]}]", "already belongs to a"},
		{"an identity with a space", "proxies: [{name: a, identities: [\"spiffe://x/a b\"]}]", "identities"},
		{"a merge key the YAML decoder panics on", "proxies:\n  - &s 0\n  - {<<,0,[]}", "malformed YAML"},
		{"too many tokens", "proxies: [{name: a, tokens: [\"" + Digest("1") + "\",\"" + Digest("2") + "\",\"" + Digest("3") + "\",\"" + Digest("4") + "\",\"" + Digest("5") + "\"]}]", "at most 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v; want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
	if s, err := Parse(nil); err != nil || s.Len() != 0 {
		t.Fatalf("an empty file: %v", err)
	}
}

func newAuth(t *testing.T, doc string, now *time.Time) *Authenticator {
	t.Helper()
	file := filepath.Join(t.TempDir(), "proxies.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{File: file, Secret: "test-admin-token-0123456789", Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFilterCredentials: a minted credential names its proxy, lives at
// most three rotation periods, cannot be edited to name another proxy,
// and dies with its proxy's entry; a reload that does not parse keeps the
// last good list.
func TestFilterCredentials(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	a := newAuth(t, "proxies:\n  - {name: edge-1, tokens: [\""+Digest("mgp_edge1")+"\"]}\n  - {name: edge-2, identities: [\"spiffe://mesh/edge-2\"]}\n", &now)
	cred := a.FilterCredential("edge-1")
	if name, err := a.Filter(cred); err != nil || name != "edge-1" {
		t.Fatalf("Filter(minted): %q, %v", name, err)
	}
	if name, err := a.Filter("mgp_edge1"); err != nil || name != "edge-1" {
		t.Fatalf("Filter(bearer): %q, %v", name, err)
	}
	parts := strings.Split(cred, ".")
	other := a.FilterCredential("edge-2")
	for _, tc := range []struct{ name, tok string }{
		{"empty", ""},
		{"the placeholder", a.Placeholder()},
		{"another proxy's name on this MAC", strings.Split(other, ".")[0] + "." + parts[1] + "." + parts[2]},
		{"another period on this MAC", parts[0] + ".1" + parts[1] + "." + parts[2]},
		{"a MAC flipped", parts[0] + "." + parts[1] + "." + strings.Repeat("0", len(parts[2]))},
		{"minted by another secret", func() string {
			b, _ := New(Config{Secret: "another-admin-token-0123456789", Now: func() time.Time { return now }})
			return b.FilterCredential("edge-1")
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if name, err := a.Filter(tc.tok); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Filter: %q, %v; want ErrUnauthenticated", name, err)
			}
		})
	}
	now = now.Add(Rotation)
	if _, err := a.Filter(cred); err != nil {
		t.Fatalf("one period later: %v", err)
	}
	if a.FilterCredential("edge-1") == cred || a.Placeholder() == PlaceholderPrefix+parts[1] {
		t.Fatal("the credential and placeholder did not rotate")
	}
	now = now.Add(Rotation)
	if _, err := a.Filter(cred); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("two periods later: %v", err)
	}

	fresh := a.FilterCredential("edge-2")
	if err := os.WriteFile(a.File(), []byte("proxies: [{name: edge-1, tokens: [\""+Digest("mgp_edge1")+"\"]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Filter(fresh); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("after edge-2 left the file: %v", err)
	}
	if err := os.WriteFile(a.File(), []byte("proxies: [{name: edge-1}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	if name, err := a.Token("mgp_edge1"); err != nil || name != "edge-1" {
		t.Fatalf("after a broken reload: %q, %v", name, err)
	}
}

// TestCertificate: a certificate is a proxy's by its SPIFFE id, a DNS
// name or its common name, when the proxy lists it.
func TestCertificate(t *testing.T) {
	now := time.Now()
	a := newAuth(t, "proxies:\n  - {name: mesh, identities: [\"spiffe://mesh/ns/a/sa/edge\"]}\n  - {name: dns, identities: [edge.example]}\n  - {name: cn, identities: [legacy-edge]}\n", &now)
	u, _ := url.Parse("spiffe://mesh/ns/a/sa/edge")
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want string
	}{
		{"spiffe", &x509.Certificate{URIs: []*url.URL{u}, Subject: pkix.Name{CommonName: "legacy-edge"}}, "mesh"},
		{"dns", &x509.Certificate{DNSNames: []string{"other.example", "edge.example"}}, "dns"},
		{"common name", &x509.Certificate{Subject: pkix.Name{CommonName: "legacy-edge"}}, "cn"},
		{"unlisted", &x509.Certificate{DNSNames: []string{"edge.example.evil"}, Subject: pkix.Name{CommonName: "edge"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Certificate(tc.cert)
			if got != tc.want || (tc.want == "") != errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Certificate: %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestSetTokenBindsOnlyAPlaceholder: only a configuration made for binding
// gets a credential; its other members keep their bytes.
func TestSetTokenBindsOnlyAPlaceholder(t *testing.T) {
	doc := `{"version":1,"agents":[{"id":"a","name":"mgf2-unbound-1"}],"meshguard":{"cluster":"meshguard_http","token":"mgf2-unbound-7"}}`
	out, err := setToken([]byte(doc), "mgf2_x.1.ab")
	if err != nil || !strings.Contains(string(out), `"token":"mgf2_x.1.ab"`) || !strings.Contains(string(out), `"name":"mgf2-unbound-1"`) {
		t.Fatalf("setToken: %s, %v", out, err)
	}
	if _, err := setToken([]byte(`{"meshguard":{"token":"mgf_a-real-credential"}}`), "mgf2_x.1.ab"); err == nil {
		t.Fatal("a configuration holding a credential was bound")
	}
}

// TestHugeProxiesFileIsReadBounded: a PROXIES_FILE beyond MaxFileBytes is
// refused after reading at most one byte more, at start and at a reload
// (the last good list stays). Before, the whole file was read into memory
// first: one that never ends (here /dev/zero, or a FIFO) exhausted it.
func TestHugeProxiesFileIsReadBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	if _, err := New(Config{File: "/dev/zero", Secret: "s"}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("New on an endless file: %v", err)
	}
	file := filepath.Join(t.TempDir(), "proxies.yaml")
	if err := os.WriteFile(file, []byte("proxies: [{name: a, tokens: [\""+Digest("mgp_a")+"\"]}]"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{File: file, Secret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", file); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Reload of an endless file: %v", err)
	}
	if name, err := a.Token("mgp_a"); err != nil || name != "a" {
		t.Fatalf("the last good list: %q, %v", name, err)
	}
}
