package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"
)

// CookieName is the session cookie. Its value is a signed session (an id
// and an expiry), never the admin token.
const CookieName = "meshguard_console"

// sessionIDBytes is the random part of a session.
const sessionIDBytes = 16

// errSession: a cookie that is no valid session (malformed, forged,
// expired, or signed under another admin token).
var errSession = errors.New("no valid session")

// sessionKeys are derived from the store's shared secret and the admin
// token's binding: a new admin token gives new keys, so every session
// signed under the old one stops verifying.
type sessionKeys struct{ mac, csrf []byte }

func newSessionKeys(secret []byte, binding [sha256.Size]byte) sessionKeys {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("meshguard console " + label + "\x00"))
		m.Write(binding[:])
		return m.Sum(nil)
	}
	return sessionKeys{mac: derive("session"), csrf: derive("csrf")}
}

// session is one sign-in.
type session struct {
	id      [sessionIDBytes]byte
	expires time.Time
}

// newSession starts a session that ends after ttl.
func newSession(now time.Time, ttl time.Duration) (session, error) {
	var s session
	if _, err := rand.Read(s.id[:]); err != nil {
		return s, err
	}
	s.expires = now.Add(ttl).Truncate(time.Second)
	return s, nil
}

// encode is the cookie value: base64url(id ‖ expiry) "." base64url(MAC).
func (k sessionKeys) encode(s session) string {
	payload := make([]byte, sessionIDBytes+8)
	copy(payload, s.id[:])
	binary.BigEndian.PutUint64(payload[sessionIDBytes:], uint64(s.expires.Unix()))
	m := hmac.New(sha256.New, k.mac)
	m.Write(payload)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(m.Sum(nil))
}

// decode verifies a cookie value (MAC in constant time, then expiry).
func (k sessionKeys) decode(v string, now time.Time) (session, error) {
	var s session
	p, mac, ok := strings.Cut(v, ".")
	if !ok || len(v) > 128 {
		return s, errSession
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	got, err2 := enc.DecodeString(mac)
	if err1 != nil || err2 != nil || len(payload) != sessionIDBytes+8 {
		return s, errSession
	}
	m := hmac.New(sha256.New, k.mac)
	m.Write(payload)
	if !hmac.Equal(got, m.Sum(nil)) {
		return s, errSession
	}
	copy(s.id[:], payload)
	exp := binary.BigEndian.Uint64(payload[sessionIDBytes:])
	if exp > 1<<62 {
		return s, errSession
	}
	s.expires = time.Unix(int64(exp), 0)
	if !now.Before(s.expires) {
		return s, errSession
	}
	return s, nil
}

// csrfToken is the form token of a session: bound to its id, so a token
// read from one session is worthless in another.
func (k sessionKeys) csrfToken(s session) string {
	m := hmac.New(sha256.New, k.csrf)
	m.Write(s.id[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF compares a form's token with the session's in constant time.
func (k sessionKeys) checkCSRF(s session, got string) bool {
	want := k.csrfToken(s)
	return len(got) == len(want) && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sessionCookie is the cookie that carries value until expires: HttpOnly,
// SameSite=Strict, scoped to /ui/, Secure when the request came over TLS.
func sessionCookie(r *http.Request, value string, expires time.Time, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: value, Path: Prefix, Expires: expires, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}
