package approvallink

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

var (
	testKey = bytes.Repeat([]byte{7}, KeySize)
	testID  = "apr_01a24bdd72b1a9199a128f5f697bc0a56924f55d"
	otherID = "apr_01a24bdd72b1ffffffffffffffffffffffffffff"
	now     = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

func mustSigner(t testing.TB) *Signer {
	t.Helper()
	s, err := NewSigner("https://mg.example.com/", testKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// split returns a link's id and query.
func split(t testing.TB, link string) (string, url.Values) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, PathPrefix), u.Query()
}

// TestLinkChecks: a link checks as made; changing any signed field — the
// id, the decision, the expiry, the channel — or the signature, or
// another key, fails; past its expiry it is expired, not bad.
func TestLinkChecks(t *testing.T) {
	s := mustSigner(t)
	exp := now.Add(time.Hour)
	link := s.Link(testID, Approve, "slack", exp)
	if !strings.HasPrefix(link, "https://mg.example.com/approvals/"+testID+"?") {
		t.Fatalf("link %s", link)
	}
	id, q := split(t, link)
	p, err := Parse(id, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(&p, now); err != nil || p.Decision != Approve || p.Channel != "slack" || !p.Exp.Equal(exp) {
		t.Fatalf("a good link: %+v, %v", p, err)
	}
	if err := s.Check(&p, exp); !errors.Is(err, ErrLinkExpired) {
		t.Fatalf("at its expiry: %v", err)
	}
	other, _ := NewSigner("https://mg.example.com", bytes.Repeat([]byte{8}, KeySize))
	if err := other.Check(&p, now); !errors.Is(err, ErrBadLink) {
		t.Fatalf("another key: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(id *string, q url.Values)
	}{
		{"another id", func(id *string, _ url.Values) { *id = otherID }},
		{"the other decision", func(_ *string, q url.Values) { q.Set("d", Deny) }},
		{"a later expiry", func(_ *string, q url.Values) { q.Set("exp", "1795694401") }},
		{"another channel", func(_ *string, q url.Values) { q.Set("via", "email") }},
		{"a flipped signature", func(_ *string, q url.Values) {
			sig := []byte(q.Get("sig"))
			sig[0] ^= 1
			q.Set("sig", string(sig))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, q := split(t, link)
			tc.edit(&id, q)
			p, err := Parse(id, q)
			if err == nil {
				err = s.Check(&p, now)
			}
			if !errors.Is(err, ErrBadLink) {
				t.Fatalf("got %v, want ErrBadLink", err)
			}
		})
	}
}

// TestParseRefuses: every malformed link is ErrBadLink.
func TestParseRefuses(t *testing.T) {
	s := mustSigner(t)
	id, good := split(t, s.Link(testID, Deny, "email", now.Add(time.Hour)))
	for _, tc := range []struct {
		name string
		id   string
		edit func(q url.Values)
	}{
		{"not an approval id", "apr_x", func(url.Values) {}},
		{"no decision", id, func(q url.Values) { q.Del("d") }},
		{"two decisions", id, func(q url.Values) { q.Add("d", Approve) }},
		{"an unknown decision", id, func(q url.Values) { q.Set("d", "maybe") }},
		{"an unknown channel", id, func(q url.Values) { q.Set("via", "sms") }},
		{"exp with a sign", id, func(q url.Values) { q.Set("exp", "+"+q.Get("exp")) }},
		{"exp with a leading zero", id, func(q url.Values) { q.Set("exp", "0"+q.Get("exp")) }},
		{"exp not a number", id, func(q url.Values) { q.Set("exp", "soon") }},
		{"exp far away", id, func(q url.Values) { q.Set("exp", "99999999999999") }},
		{"no signature", id, func(q url.Values) { q.Del("sig") }},
		{"a short signature", id, func(q url.Values) { q.Set("sig", "abc") }},
		{"a padded signature", id, func(q url.Values) { q.Set("sig", q.Get("sig")+"=") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range good {
				q[k] = append([]string(nil), v...)
			}
			tc.edit(q)
			if _, err := Parse(tc.id, q); !errors.Is(err, ErrBadLink) {
				t.Fatalf("got %v, want ErrBadLink", err)
			}
		})
	}
	if _, err := NewSigner("https://mg.example.com", testKey[:16]); err == nil {
		t.Error("a short key was accepted")
	}
	if _, err := NewSigner("mg.example.com", testKey); err == nil {
		t.Error("a base without a scheme was accepted")
	}
}

// FuzzParse: no query, however malformed, panics or checks unless it is
// exactly a link this signer made.
func FuzzParse(f *testing.F) {
	s := mustSigner(f)
	good := s.Link(testID, Approve, "webhook", now.Add(time.Hour))
	u, _ := url.Parse(good)
	f.Add(testID, u.RawQuery)
	f.Add(testID, "d=approve&exp=1&via=slack&sig=AAAA")
	f.Add("apr_", "d=deny&d=approve&exp=-1&via=email&sig=%ZZ")
	f.Add(otherID, strings.Replace(u.RawQuery, "d=approve", "d=deny", 1))
	f.Fuzz(func(t *testing.T, id, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, err := Parse(id, q)
		if err != nil {
			if !errors.Is(err, ErrBadLink) {
				t.Fatalf("Parse: %v", err)
			}
			return
		}
		if err := s.Check(&p, now); err == nil {
			// Only the signer's own link checks: re-making it must give
			// the same signature.
			if again := s.Link(p.ID, p.Decision, p.Channel, p.Exp); !sameQuery(t, again, q) {
				t.Fatalf("a query checked that the signer did not make: %s", raw)
			}
		}
	})
}

func sameQuery(t *testing.T, link string, q url.Values) bool {
	_, want := split(t, link)
	for _, k := range []string{"d", "exp", "via", "sig"} {
		if want.Get(k) != q.Get(k) {
			return false
		}
	}
	return true
}
