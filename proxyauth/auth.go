package proxyauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Errors callers branch on.
var (
	// ErrUnauthenticated: no credential, or one no listed proxy holds.
	ErrUnauthenticated = errors.New("not a listed proxy")
)

// Config is what an Authenticator needs.
type Config struct {
	// File is PROXIES_FILE; empty lists no proxy.
	File string
	// Secret keys the filter credentials this server mints: every replica
	// with the same secret (the admin token) accepts the others'.
	Secret string
	// InsecureAllowUnauthenticated lets any client use xDS, each under a
	// name of its own making (InsecureName).
	InsecureAllowUnauthenticated bool
	// Now is the clock (time.Now if nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Authenticator knows the proxies listed and checks their credentials.
type Authenticator struct {
	cfg Config
	key []byte
	set atomic.Pointer[Set]
	log *slog.Logger
	// streams are the discovery streams open now (grpc.go).
	streams openStreams
}

// New reads the proxies file once: a server does not start with a file it
// cannot read.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Secret == "" {
		return nil, errors.New("proxyauth: a secret is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	mac := hmac.New(sha256.New, []byte(cfg.Secret))
	mac.Write([]byte("meshguard proxy filter credential key v1"))
	a.key = mac.Sum(nil)
	a.set.Store(&Set{byName: map[string]*Proxy{}, byIdentity: map[string]*Proxy{}})
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the file again and ends the open discovery streams of
// proxies it no longer lists; when it does not parse, the last good list
// stays and the error says why.
func (a *Authenticator) Reload() error {
	if a.cfg.File == "" {
		return nil
	}
	data, err := readBounded(a.cfg.File)
	if err != nil {
		return fmt.Errorf("PROXIES_FILE: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return fmt.Errorf("PROXIES_FILE %s: %w", a.cfg.File, err)
	}
	a.set.Store(s)
	a.revokeUnlisted()
	return nil
}

// readBounded reads name up to one byte past MaxFileBytes (Parse refuses
// more): a file that never ends must not exhaust memory first.
func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
}

// File is the proxies file watched (empty: none).
func (a *Authenticator) File() string { return a.cfg.File }

// Insecure says unauthenticated xDS clients are let in.
func (a *Authenticator) Insecure() bool { return a.cfg.InsecureAllowUnauthenticated }

// Len is the number of proxies listed now.
func (a *Authenticator) Len() int { return a.set.Load().Len() }

// Token returns the proxy whose bearer credential tok is. Every listed
// digest is compared, in constant time, whatever matches.
func (a *Authenticator) Token(tok string) (string, error) {
	if tok == "" {
		return "", ErrUnauthenticated
	}
	d := sha256.Sum256([]byte(tok))
	var found *Proxy
	for _, e := range a.set.Load().tokens {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found = e.proxy
		}
	}
	if found == nil {
		return "", ErrUnauthenticated
	}
	return found.Name, nil
}

// Certificate returns the proxy a verified client certificate belongs
// to: the first of its URI SANs (SPIFFE ids), DNS SANs and common name
// that a proxy lists.
func (a *Authenticator) Certificate(c *x509.Certificate) (string, error) {
	s := a.set.Load()
	for _, id := range CertificateIdentities(c) {
		if p := s.byIdentity[id]; p != nil {
			return p.Name, nil
		}
	}
	return "", ErrUnauthenticated
}

// CertificateIdentities are the identities a certificate can be listed
// under: its URI SANs, its DNS SANs, its subject's common name.
func CertificateIdentities(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	out = append(out, c.DNSNames...)
	if c.Subject.CommonName != "" {
		out = append(out, c.Subject.CommonName)
	}
	return out
}

// insecurePrefix marks the names unauthenticated clients are given.
const insecurePrefix = "insecure/"

// InsecureName is the name an unauthenticated xDS client is known by: its
// node id, marked as unverified.
func InsecureName(node string) string { return insecurePrefix + node }

// Filter credentials: minted per proxy, for one rotation period, sent to
// that proxy's filter alone.
const (
	// Rotation is how long a minted filter credential is the current one.
	// One is accepted in the period it was minted for and the ones either
	// side (a push in flight, replicas' clocks a little apart): at most
	// three periods.
	Rotation = time.Hour
	// filterPrefix starts every minted filter credential.
	filterPrefix = "mgf2_"
	// PlaceholderPrefix starts the credential of a filter configuration
	// not yet bound to a proxy: it opens nothing. The period in it makes
	// the configuration change, and so be pushed again, at each rotation.
	PlaceholderPrefix = "mgf2-unbound-"
)

// Placeholder is the filter credential of a configuration made for every
// proxy: the xDS interceptor replaces it, per stream, with the
// credential of the proxy that stream authenticated.
func (a *Authenticator) Placeholder() string {
	return PlaceholderPrefix + strconv.FormatInt(a.period(a.cfg.Now()), 10)
}

// FilterCredential mints the current filter credential of proxy name.
func (a *Authenticator) FilterCredential(name string) string {
	return a.mint(name, a.period(a.cfg.Now()))
}

func (a *Authenticator) period(t time.Time) int64 { return t.Unix() / int64(Rotation/time.Second) }

func (a *Authenticator) mint(name string, period int64) string {
	p := strconv.FormatInt(period, 10)
	return filterPrefix + base64.RawURLEncoding.EncodeToString([]byte(name)) + "." + p + "." + hex.EncodeToString(a.mac(name, p))
}

func (a *Authenticator) mac(name, period string) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(period))
	return m.Sum(nil)
}

// Filter returns the proxy a wasm filter's credential belongs to: a
// credential this server (or a replica) minted for a proxy still listed,
// within its periods; or a listed proxy's bearer credential (a filter
// configured by hand, as in an Istio WasmPlugin).
func (a *Authenticator) Filter(tok string) (string, error) {
	rest, minted := strings.CutPrefix(tok, filterPrefix)
	if !minted {
		return a.Token(tok)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", ErrUnauthenticated
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", ErrUnauthenticated
	}
	name := string(raw)
	period, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || parts[1] != strconv.FormatInt(period, 10) {
		return "", ErrUnauthenticated
	}
	got, err := hex.DecodeString(parts[2])
	if err != nil || !hmac.Equal(got, a.mac(name, parts[1])) {
		return "", ErrUnauthenticated
	}
	if now := a.period(a.cfg.Now()); period < now-1 || period > now+1 {
		return "", fmt.Errorf("%w: the filter credential has expired", ErrUnauthenticated)
	}
	if a.set.Load().byName[name] == nil && !(a.cfg.InsecureAllowUnauthenticated && strings.HasPrefix(name, insecurePrefix)) {
		return "", fmt.Errorf("%w: the proxy is no longer listed", ErrUnauthenticated)
	}
	return name, nil
}
