// Package approvallink is the signed one-time link in an approval's
// notification (docs/governance.md "From the notification"): signing and
// checking the link, and the two pages behind it — a GET that shows what
// is asked and decides nothing (mail scanners and chat unfurlers fetch
// links), and the POST of its button, which decides through a Decider.
package approvallink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/approval"
)

// PathPrefix is where links point, on MeshGuard's HTTP port.
const PathPrefix = "/approvals/"

// Decisions a link carries.
const (
	Approve = "approve"
	Deny    = "deny"
)

// Channels a link may name: the notification it came from ("by" is
// link:<channel>). They are the alert providers' names.
var channels = map[string]bool{"webhook": true, "slack": true, "email": true}

// KeySize is the length of a link secret.
const KeySize = 32

// Errors a caller branches on. Neither says which check failed: a bad
// link is refused without saying why.
var (
	// ErrBadLink: malformed, or not signed by this MeshGuard.
	ErrBadLink = errors.New("approval link is not valid")
	// ErrLinkExpired: a good signature whose exp has passed.
	ErrLinkExpired = errors.New("approval link expired")
)

// Params are a link's signed parameters.
type Params struct {
	ID       string
	Decision string // Approve or Deny
	Exp      time.Time
	Channel  string
	sig      []byte
}

// Signer makes and checks links under one secret.
type Signer struct {
	key  []byte
	base string // APPROVAL_LINK_BASE, no trailing slash
}

// NewSigner returns a Signer for links under base (an absolute http(s)
// URL, MeshGuard's HTTP port as its users reach it) signed with key.
func NewSigner(base string, key []byte) (*Signer, error) {
	if len(key) < KeySize {
		return nil, fmt.Errorf("approval links: a secret of %d bytes (at least %d)", len(key), KeySize)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("approval links: base %q: expected an http(s) URL without query or fragment", base)
	}
	return &Signer{key: append([]byte(nil), key...), base: strings.TrimRight(base, "/")}, nil
}

// Link is the URL deciding approval id with decision, from channel,
// valid until exp.
func (s *Signer) Link(id, decision, channel string, exp time.Time) string {
	p := Params{ID: id, Decision: decision, Exp: exp, Channel: channel}
	q := url.Values{"d": {decision}, "exp": {strconv.FormatInt(exp.Unix(), 10)}, "via": {channel},
		"sig": {base64.RawURLEncoding.EncodeToString(s.mac(&p))}}
	return s.base + PathPrefix + url.PathEscape(id) + "?" + q.Encode()
}

// mac is the HMAC-SHA256 of the signed fields, each length-prefixed so no
// two different tuples encode alike.
func (s *Signer) mac(p *Params) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("meshguard-approval-link-v1"))
	for _, f := range []string{p.ID, p.Decision, strconv.FormatInt(p.Exp.Unix(), 10), p.Channel} {
		m.Write([]byte{byte(len(f) >> 8), byte(len(f))})
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

// Parse reads a link's parameters: the id from its path, the rest from its
// query, each exactly once and well formed. Other query parameters (a
// mail gateway's tracking) are ignored: they are not signed and not used.
func Parse(id string, q url.Values) (Params, error) {
	one := func(k string) (string, bool) {
		v := q[k]
		return strings.Join(v, ""), len(v) == 1
	}
	d, okD := one("d")
	exp, okE := one("exp")
	via, okV := one("via")
	sig, okS := one("sig")
	if !okD || !okE || !okV || !okS || !approval.ValidID(id) || (d != Approve && d != Deny) || !channels[via] {
		return Params{}, ErrBadLink
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	// Decimal digits only, no sign or leading zero: one spelling per exp.
	if err != nil || unix <= 0 || unix > 1<<40 || strconv.FormatInt(unix, 10) != exp {
		return Params{}, ErrBadLink
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || len(raw) != sha256.Size {
		return Params{}, ErrBadLink
	}
	return Params{ID: id, Decision: d, Exp: time.Unix(unix, 0), Channel: via, sig: raw}, nil
}

// Check verifies p's signature in constant time, then its expiry at now.
func (s *Signer) Check(p *Params, now time.Time) error {
	if p.sig == nil || !hmac.Equal(p.sig, s.mac(p)) {
		return ErrBadLink
	}
	if !now.Before(p.Exp) {
		return ErrLinkExpired
	}
	return nil
}
