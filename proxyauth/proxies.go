// Package proxyauth says who may use MeshGuard's control plane: which
// proxies (Envoys) may open an xDS stream and call the wasm filter's
// endpoints, and under which identity.
//
// The proxies are listed in PROXIES_FILE, each with a name (its identity),
// the client certificate identities it connects with (mTLS: a SPIFFE URI
// SAN, a DNS SAN or the subject's common name) and the SHA-256 digests of
// its bearer credentials. The file holds no secret, so it can live in a
// ConfigMap; removing a proxy revokes it at the next reload, and listing
// two digests lets a credential be rotated without a gap.
//
// A proxy authenticated on xDS is sent a wasm filter credential minted for
// its name alone (FilterCredential), rotated every hour and refused as soon
// as the proxy leaves the file.
package proxyauth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/internal/yamldoc"
)

// Bounds on the file (every limit bounded).
const (
	MaxFileBytes          = 1 << 20
	MaxProxies            = 10_000
	MaxIdentitiesPerProxy = 16
	MaxTokensPerProxy     = 4
	maxIdentityLen        = 512
)

// ErrInvalid wraps every reason a proxies file is refused.
var ErrInvalid = errors.New("invalid proxies file")

// Proxy is one proxy allowed to use the control plane.
type Proxy struct {
	// Name is the proxy's identity: the records its wasm filter ships are
	// marked with it.
	Name string `yaml:"name"`
	// Identities are the client certificate identities it connects with.
	Identities []string `yaml:"identities"`
	// Tokens are "sha256:<hex>" digests of its bearer credentials.
	Tokens []string `yaml:"tokens"`
}

type fileDoc struct {
	Proxies []Proxy `yaml:"proxies"`
}

// Set is a parsed proxies file.
type Set struct {
	byName     map[string]*Proxy
	byIdentity map[string]*Proxy
	tokens     []tokenEntry
}

type tokenEntry struct {
	digest [sha256.Size]byte
	proxy  *Proxy
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Parse reads a proxies file strictly: an unknown key, a duplicate name,
// identity or digest, a digest that is not sha256:<64 hex>, or a proxy
// with no way to authenticate is refused with the entry named.
func Parse(data []byte) (*Set, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxFileBytes)
	}
	var doc fileDoc
	// An empty file lists no proxy (io.EOF).
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := yamldoc.Decode(dec, &doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(doc.Proxies) > MaxProxies {
		return nil, fmt.Errorf("%w: %d proxies, at most %d", ErrInvalid, len(doc.Proxies), MaxProxies)
	}
	s := &Set{byName: map[string]*Proxy{}, byIdentity: map[string]*Proxy{}}
	seenDigest := map[[sha256.Size]byte]string{}
	for i := range doc.Proxies {
		p := &doc.Proxies[i]
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: proxies[%d] (%s): %s", ErrInvalid, i, p.Name, fmt.Sprintf(format, args...))
		}
		switch {
		case CheckName(p.Name) != nil:
			return nil, bad("name: %v", CheckName(p.Name))
		case s.byName[p.Name] != nil:
			return nil, bad("name: listed twice")
		case len(p.Identities) == 0 && len(p.Tokens) == 0:
			return nil, bad("neither identities nor tokens: it could never authenticate")
		case len(p.Identities) > MaxIdentitiesPerProxy:
			return nil, bad("identities: at most %d", MaxIdentitiesPerProxy)
		case len(p.Tokens) > MaxTokensPerProxy:
			return nil, bad("tokens: at most %d (one in use, one being rotated in)", MaxTokensPerProxy)
		}
		s.byName[p.Name] = p
		for _, id := range p.Identities {
			if id == "" || len(id) > maxIdentityLen || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
				return nil, bad("identities: %q: expected a SPIFFE id, DNS name or common name without spaces", id)
			}
			if other := s.byIdentity[id]; other != nil {
				return nil, bad("identities: %q already belongs to %s", id, other.Name)
			}
			s.byIdentity[id] = p
		}
		for _, t := range p.Tokens {
			d, err := ParseDigest(t)
			if err != nil {
				return nil, bad("tokens: %v", err)
			}
			if other, dup := seenDigest[d]; dup {
				return nil, bad("tokens: a digest already listed for %s", other)
			}
			seenDigest[d] = p.Name
			s.tokens = append(s.tokens, tokenEntry{digest: d, proxy: p})
		}
	}
	return s, nil
}

// CheckName says whether name can name a proxy.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q: expected letters, digits, '.', '_' or '-' (a letter or digit first), at most 128", name)
	}
	return nil
}

// NewCredential makes a random bearer credential for a proxy (256 bits).
func NewCredential() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms (Go 1.24+)
	return "mgp_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Len is the number of proxies listed.
func (s *Set) Len() int { return len(s.byName) }

// Digest is how a credential is listed: "sha256:" and the hex SHA-256 of
// the credential.
func Digest(token string) string {
	d := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(d[:])
}

// ParseDigest reads a digest as Digest writes it.
func ParseDigest(s string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return d, fmt.Errorf("%q: expected sha256: and 64 hex digits (meshguard proxy token prints it)", s)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("%q: expected sha256: and 64 hex digits", s)
	}
	return d, nil
}
