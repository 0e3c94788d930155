package alert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/meshguard/meshguard/audit"
)

// smtpServer is a real SMTP server (go-smtp) on 127.0.0.1 with STARTTLS
// and AUTH PLAIN, keeping what it receives.
type smtpServer struct {
	addr  string
	roots *x509.CertPool

	mu       sync.Mutex
	from     string
	to       []string
	data     string
	tlsSeen  bool
	authUser string
}

type smtpSession struct {
	s    *smtpServer
	conn *smtp.Conn
}

func (ss *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "alerts" || pass != "s3cret" {
			return errors.New("invalid credentials")
		}
		ss.s.mu.Lock()
		ss.s.authUser = user
		ss.s.mu.Unlock()
		return nil
	}), nil
}

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.from = from
	_, ss.s.tlsSeen = ss.conn.TLSConnectionState()
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.to = append(ss.s.to, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.data = string(b)
	return err
}

func (ss *smtpSession) Reset()        {}
func (ss *smtpSession) Logout() error { return nil }

// startSMTP runs the server; withTLS false offers no STARTTLS.
func startSMTP(t *testing.T, withTLS bool) *smtpServer {
	t.Helper()
	s := &smtpServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s, conn: c}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if withTLS {
		cert, roots := selfSigned(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.roots = roots
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshguard test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func (s *smtpServer) email(user, pass string) *Email {
	host, port, _ := net.SplitHostPort(s.addr)
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	return &Email{From: "meshguard@example.com", To: []string{"oncall@example.com", "security@example.com"}, Host: host, Port: p,
		User: user, Pass: pass, TLSConfig: &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
}

// TestEmail: over STARTTLS and AUTH, one message reaches every recipient,
// with a plain-text part and an HTML part that escapes what came from the
// mesh; a wrong password, or a server without STARTTLS, is a delivery
// failure and nothing is sent in clear.
func TestEmail(t *testing.T) {
	s := startSMTP(t, true)
	all, _ := ParseTriggers("all")
	a, _ := ForDecision(&audit.Record{Timestamp: at, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", AgentName: "emailer", TrustTier: "verified",
		Action: "write:email", Method: "POST", Path: "/outbox/<b>x</b>", Decision: "deny", Status: 403, Policy: "emailers", Reason: "rule_deny"}, all, Origin{Instance: "mg-1"})
	if err := s.email("alerts", "s3cret").Send(context.Background(), &a); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tlsSeen || s.authUser != "alerts" || s.from != "meshguard@example.com" || strings.Join(s.to, ",") != "oncall@example.com,security@example.com" {
		t.Fatalf("tls %v, auth %q, from %q, to %v", s.tlsSeen, s.authUser, s.from, s.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(s.data))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := (&mime.WordDecoder{}).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "[MeshGuard warning] Denied: emailer → write:email" {
		t.Errorf("subject %q (%v)", subject, err)
	}
	for _, want := range []string{"text/plain", "text/html", "4bf92f3577b34da6a3ce929d0e0e4736", "&lt;b&gt;x&lt;/b&gt;"} {
		if !strings.Contains(s.data, want) {
			t.Errorf("the message lacks %q:\n%s", want, s.data)
		}
	}
	s.mu.Unlock()
	err = s.email("alerts", "wrong").Send(context.Background(), &a)
	s.mu.Lock()
	if !errors.Is(err, ErrDelivery) {
		t.Errorf("a wrong password: %v", err)
	}

	plain := startSMTP(t, false)
	if err := plain.email("alerts", "s3cret").Send(context.Background(), &a); !errors.Is(err, ErrDelivery) {
		t.Errorf("a server without STARTTLS: %v", err)
	}
	if plain.data != "" || plain.authUser != "" {
		t.Error("something was sent in clear")
	}
}
