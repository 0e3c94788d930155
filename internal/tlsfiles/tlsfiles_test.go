package tlsfiles_test

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshguard/meshguard/internal/tlsfiles"
	"github.com/meshguard/meshguard/internal/tlsfiles/tlstest"
)

// serve accepts TLS connections on loopback with r's configuration until
// the test ends, completing each handshake.
func serve(t *testing.T, r *tlsfiles.Reloader) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig("h2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			// A byte tells the client its certificate was accepted
			// (TLS 1.3 reports a refusal only on the client's first read).
			if c.(*tls.Conn).Handshake() == nil {
				_, _ = c.Write([]byte{1})
			}
			_ = c.Close()
		}
	}()
	return lis.Addr().String()
}

// handshake dials addr and returns the common name of the certificate the
// server presented.
func handshake(t *testing.T, addr string, ca *tlstest.CA, client *tls.Certificate) (string, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", NextProtos: []string{"h2"}}
	if client != nil {
		// Sent whatever CAs the server names: a client of another CA is
		// really refused, not silently sending nothing.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client, nil }
	}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// TestRotation: a replaced pair is served from the next handshake on; a
// broken pair (a key that does not match, a truncated certificate) keeps
// the last good one in force.
func TestRotation(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	f := ca.WriteServer(t, tlstest.Loopback("first"))
	r, err := tlsfiles.New(tlsfiles.Files{Cert: f.Cert, Key: f.Key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	expect := func(want string) {
		t.Helper()
		got, err := handshake(t, addr, ca, nil)
		if err != nil || got != want {
			t.Fatalf("handshake: certificate %q, %v; want %q", got, err, want)
		}
	}
	expect("first")

	c2, k2 := ca.Issue(t, tlstest.Loopback("second"))
	tlstest.Write(t, f.Cert, c2)
	tlstest.Write(t, f.Key, k2)
	expect("second")

	for name, write := range map[string]func(){
		"a certificate without its key": func() {
			c3, _ := ca.Issue(t, tlstest.Loopback("third"))
			tlstest.Write(t, f.Cert, c3)
		},
		"a truncated certificate": func() { tlstest.Write(t, f.Cert, c2[:len(c2)/2]) },
		"a missing key":           func() { _ = os.Remove(f.Key) },
	} {
		t.Run(name, func(t *testing.T) {
			write()
			expect("second")
			tlstest.Write(t, f.Cert, c2)
			tlstest.Write(t, f.Key, k2)
		})
	}
}

// TestClientCA: with a client CA, a client without a certificate, or with
// one from another CA, is refused in the handshake; one the CA signed gets
// through. A new CA file takes effect at the next handshake.
func TestClientCA(t *testing.T) {
	ca := tlstest.NewCA(t, "server CA")
	clients := tlstest.NewCA(t, "client CA")
	other := tlstest.NewCA(t, "another CA")
	f := ca.WriteServer(t, tlstest.Loopback("server"))
	caFile := filepath.Join(f.Dir, "clients.crt")
	tlstest.Write(t, caFile, clients.PEM)
	r, err := tlsfiles.New(tlsfiles.Files{Cert: f.Cert, Key: f.Key, ClientCA: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	good := clients.Pair(t, tlstest.Leaf{CommonName: "envoy-1", Client: true})
	bad := other.Pair(t, tlstest.Leaf{CommonName: "envoy-1", Client: true})
	for _, tc := range []struct {
		name   string
		client *tls.Certificate
		ok     bool
	}{
		{"no client certificate", nil, false},
		{"a certificate of another CA", &bad, false},
		{"a certificate of the client CA", &good, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := handshake(t, addr, ca, tc.client); (err == nil) != tc.ok {
				t.Fatalf("handshake: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// The operator trusts the other CA instead.
	tlstest.Write(t, caFile, other.PEM)
	if _, err := handshake(t, addr, ca, &bad); err != nil {
		t.Fatalf("after the CA file changed: %v", err)
	}
	if _, err := handshake(t, addr, ca, &good); err == nil {
		t.Fatal("a certificate of the CA no longer trusted got through")
	}
}

// TestOptionalClientCertificates: with ClientCertOptional a client without
// a certificate (a Kubernetes probe) completes the handshake and is seen
// without one; a certificate of another CA is still refused, and one of the
// client CA is verified.
func TestOptionalClientCertificates(t *testing.T) {
	ca := tlstest.NewCA(t, "server CA")
	clients := tlstest.NewCA(t, "client CA")
	other := tlstest.NewCA(t, "another CA")
	f := ca.WriteServer(t, tlstest.Loopback("server"))
	caFile := filepath.Join(f.Dir, "clients.crt")
	tlstest.Write(t, caFile, clients.PEM)
	r, err := tlsfiles.New(tlsfiles.Files{Cert: f.Cert, Key: f.Key, ClientCA: caFile, ClientCertOptional: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	good := clients.Pair(t, tlstest.Leaf{CommonName: "envoy-1", Client: true})
	bad := other.Pair(t, tlstest.Leaf{CommonName: "envoy-1", Client: true})
	for _, tc := range []struct {
		name   string
		client *tls.Certificate
		ok     bool
	}{
		{"no client certificate", nil, true},
		{"a certificate of another CA", &bad, false},
		{"a certificate of the client CA", &good, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := handshake(t, addr, ca, tc.client); (err == nil) != tc.ok {
				t.Fatalf("handshake: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestNewRefusesBrokenFiles: a server does not start with TLS it cannot
// serve.
func TestNewRefusesBrokenFiles(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	f := ca.WriteServer(t, tlstest.Loopback("server"))
	notPEM := filepath.Join(f.Dir, "junk")
	tlstest.Write(t, notPEM, []byte("not a certificate"))
	for _, tc := range []struct {
		name  string
		files tlsfiles.Files
	}{
		{"no key", tlsfiles.Files{Cert: f.Cert}},
		{"a missing file", tlsfiles.Files{Cert: f.Cert, Key: filepath.Join(f.Dir, "absent")}},
		{"key and certificate swapped", tlsfiles.Files{Cert: f.Key, Key: f.Cert}},
		{"a client CA that is no certificate", tlsfiles.Files{Cert: f.Cert, Key: f.Key, ClientCA: notPEM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tlsfiles.New(tc.files, nil); !errors.Is(err, tlsfiles.ErrFiles) {
				t.Fatalf("New: %v, want ErrFiles", err)
			}
		})
	}
}
