package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// testCA is a certificate authority made in the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert, key}
}

// leaf issues a client certificate with the given URI SANs.
func (ca *testCA) leaf(t *testing.T, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "workload"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startMTLSGateway serves the gateway over TLS on loopback, asking for
// client certificates with clientAuth and trusting those ca issued.
func startMTLSGateway(t *testing.T, cfg gateway.Config, clientAuth tls.ClientAuthType, ca *testCA) *httptest.Server {
	t.Helper()
	cfg.Logger = testLogger(t)
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	srv.TLS = &tls.Config{ClientAuth: clientAuth, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// clientWith is an HTTPS client of srv presenting cert (none if empty),
// whichever CAs the server says it accepts: as an attacker would.
func clientWith(t *testing.T, srv *httptest.Server, cert tls.Certificate) *http.Client {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	if cert.Certificate != nil {
		tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// TestMTLSPeerPrincipal: served over mutual TLS, the gateway takes the
// SPIFFE ID of the client's verified certificate as its identity, and
// nothing else: not a certificate it did not verify, not one whose URI SAN
// is no SPIFFE ID or that has two, not a header.
func TestMTLSPeerPrincipal(t *testing.T) {
	t.Parallel()
	const researcher = "spiffe://cluster.local/ns/research/sa/researcher"
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	reader, readerT := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	f.Bind(t, reader.ID, researcher)
	_, otherT := f.Agent(t, "other", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	cfg := gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)}
	ca := newCA(t, "mesh CA")
	verifying := startMTLSGateway(t, cfg, tls.RequireAndVerifyClientCert, ca)
	// A server that asks for a certificate but does not verify it: anyone
	// can present any SPIFFE ID to it.
	unverifying := startMTLSGateway(t, cfg, tls.RequestClientCert, ca)

	tests := []struct {
		name    string
		srv     *httptest.Server
		cert    tls.Certificate
		headers []string
		status  int
		agent   string // the upstream's X-Meshguard-Agent-Id for a 200
	}{
		{"bound SPIFFE ID, no token", verifying, ca.leaf(t, researcher), nil, 200, reader.ID},
		{"bound SPIFFE ID and its agent's token", verifying, ca.leaf(t, researcher), []string{bearer(readerT)}, 200, reader.ID},
		{"bound SPIFFE ID and another agent's token", verifying, ca.leaf(t, researcher), []string{bearer(otherT)}, 403, ""},
		{"unbound SPIFFE ID and the bound agent's token", verifying, ca.leaf(t, "spiffe://cluster.local/ns/x/sa/y"), []string{bearer(readerT)}, 403, ""},
		{"unbound SPIFFE ID and an unbound agent's token", verifying, ca.leaf(t, "spiffe://cluster.local/ns/x/sa/y"), []string{bearer(otherT)}, 200, ""},
		{"unbound SPIFFE ID, no token", verifying, ca.leaf(t, "spiffe://cluster.local/ns/x/sa/y"), nil, 401, ""},
		{"URI SAN that is no SPIFFE ID", verifying, ca.leaf(t, "https://cluster.local/ns/research/sa/researcher"), nil, 401, ""},
		{"two SPIFFE IDs, one bound", verifying, ca.leaf(t, researcher, "spiffe://cluster.local/ns/x/sa/y"), nil, 401, ""},
		{"SPIFFE ID and another URI SAN", verifying, ca.leaf(t, researcher, "https://example.com/"), nil, 401, ""},
		{"SPIFFE ID with an upper-case trust domain", verifying, ca.leaf(t, "spiffe://Cluster.local/ns/research/sa/researcher"), nil, 401, ""},
		{"no URI SAN, a forged x-forwarded-client-cert", verifying, ca.leaf(t),
			[]string{"X-Forwarded-Client-Cert: By=spiffe://cluster.local/ns/gw/sa/gw;URI=" + researcher}, 401, ""},
		{"bound SPIFFE ID from an unverified certificate", unverifying, newCA(t, "attacker CA").leaf(t, researcher), nil, 401, ""},
		{"no certificate where none is verified", unverifying, tls.Certificate{}, []string{bearer(readerT)}, 200, reader.ID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, clientWith(t, tc.srv, tc.cert), "GET", tc.srv.URL+"/proxy/docs/readme", tc.headers...)
			if res.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", res.Status, res.Body, tc.status)
			}
			if tc.status == 403 {
				if reason := res.json(t)["reason"]; reason != "identity_mismatch" {
					t.Fatalf("reason %v, want identity_mismatch", reason)
				}
			}
			if tc.status != 200 {
				return
			}
			got := up.last(t)
			if tc.agent != "" && got.Header.Get("X-Meshguard-Agent-Id") != tc.agent {
				t.Fatalf("upstream agent %q, want %q", got.Header.Get("X-Meshguard-Agent-Id"), tc.agent)
			}
		})
	}

	// A certificate from another CA does not get through the handshake.
	if _, err := clientWith(t, verifying, newCA(t, "attacker CA").leaf(t, researcher)).Get(verifying.URL + "/proxy/docs/readme"); err == nil {
		t.Fatal("a certificate from an untrusted CA was accepted")
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream received %d more requests", n)
	}
}
