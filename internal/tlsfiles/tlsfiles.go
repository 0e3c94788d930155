// Package tlsfiles serves TLS from certificate files that are replaced
// while the server runs, as cert-manager and Istio replace them: every
// handshake sees the files as they are now, and a pair that does not load
// (a certificate written before its key, a truncated file) leaves the last
// good one in force rather than breaking every new connection.
package tlsfiles

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// Files are the PEM files a server's TLS is read from.
type Files struct {
	// Cert and Key are the server's certificate (chain) and private key.
	Cert, Key string
	// ClientCA, if set, holds the CAs client certificates must chain to:
	// a client without one is refused in the handshake (mTLS), unless
	// ClientCertOptional.
	ClientCA string
	// ClientCertOptional lets a client without a certificate through the
	// handshake (Kubernetes probes have none); one that presents a
	// certificate must still present one of ClientCA.
	ClientCertOptional bool
}

// ErrFiles wraps every reason the files do not make a usable TLS setup.
var ErrFiles = errors.New("TLS files")

// maxFileBytes bounds each file: a chain and a CA bundle fit many times.
const maxFileBytes = 1 << 20

// Reloader hands out the TLS configuration of the files as they are now.
type Reloader struct {
	files Files
	log   *slog.Logger

	mu      sync.Mutex
	inForce *loaded
	bad     [sha256.Size]byte // the broken content last reported, so it is reported once
}

type loaded struct {
	digest [sha256.Size]byte
	cert   *tls.Certificate
	leaf   *x509.Certificate
	cas    *x509.CertPool
}

// New reads the files once: a server must not start with TLS it cannot
// serve, so any problem now is an error.
func New(f Files, log *slog.Logger) (*Reloader, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, fmt.Errorf("%w: a certificate and a key are both required", ErrFiles)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{files: f, log: log}
	digest, raw, err := r.read()
	if err != nil {
		return nil, err
	}
	l, err := r.parse(digest, raw)
	if err != nil {
		return nil, err
	}
	r.inForce = l
	return r, nil
}

// ServerConfig is a configuration whose every handshake uses the files'
// current content. nextProtos are the ALPN protocols to offer ("h2" for
// gRPC; "h2" and "http/1.1" for HTTP).
func (r *Reloader) ServerConfig(nextProtos ...string) *tls.Config {
	protos := append([]string(nil), nextProtos...)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: protos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			l := r.load()
			c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: protos, Certificates: []tls.Certificate{*l.cert}}
			if l.cas != nil {
				c.ClientCAs, c.ClientAuth = l.cas, tls.RequireAndVerifyClientCert
				if r.files.ClientCertOptional {
					c.ClientAuth = tls.VerifyClientCertIfGiven
				}
			}
			return c, nil
		},
	}
}

// Leaf is the server certificate in force (for tests and logs).
func (r *Reloader) Leaf() *x509.Certificate { return r.load().leaf }

// load reads the files again and returns what is in force: their
// content if it changed and loads, or else what was in force before. The
// files are a few kilobytes and handshakes are rare (Envoy keeps its
// connections), so reading them each time costs less than watching them
// and cannot miss a change.
func (r *Reloader) load() *loaded {
	r.mu.Lock()
	defer r.mu.Unlock()
	digest, raw, err := r.read()
	if err == nil && digest == r.inForce.digest {
		return r.inForce
	}
	if err == nil {
		var l *loaded
		if l, err = r.parse(digest, raw); err == nil {
			r.inForce = l
			r.log.Info("tls: new certificate in force", "subject", l.leaf.Subject.String(), "notAfter", l.leaf.NotAfter)
			return l
		}
		if digest == r.bad {
			return r.inForce
		}
		r.bad = digest
	}
	r.log.Error("tls: the certificate files do not load; the last good certificate stays in force", "error", err)
	return r.inForce
}

// read returns the files' content and its digest.
func (r *Reloader) read() ([sha256.Size]byte, [3][]byte, error) {
	var raw [3][]byte
	h := sha256.New()
	for i, name := range []string{r.files.Cert, r.files.Key, r.files.ClientCA} {
		if name == "" {
			continue
		}
		b, err := readBounded(name)
		if err != nil {
			return [sha256.Size]byte{}, raw, err
		}
		raw[i] = b
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return [sha256.Size]byte(h.Sum(nil)), raw, nil
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrFiles, name, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrFiles, name, maxFileBytes)
	}
	return b, nil
}

// parse checks that the certificate and key make a pair and that the CA
// file holds certificates.
func (r *Reloader) parse(digest [sha256.Size]byte, raw [3][]byte) (*loaded, error) {
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return nil, fmt.Errorf("%w: %s and %s: %w", ErrFiles, r.files.Cert, r.files.Key, err)
	}
	l := &loaded{digest: digest, cert: &cert, leaf: cert.Leaf}
	if r.files.ClientCA != "" {
		l.cas = x509.NewCertPool()
		if !l.cas.AppendCertsFromPEM(raw[2]) {
			return nil, fmt.Errorf("%w: %s: no PEM certificate", ErrFiles, r.files.ClientCA)
		}
	}
	return l, nil
}
