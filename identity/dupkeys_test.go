package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/internal/edge"
)

// TestRepeatedMembersAreRefused: a token whose header or payload repeats a
// member is refused, signature or not. encoding/json keeps the last of
// repeated keys; a JWT library that keeps the first (Envoy's jwt_authn in
// front of ext_authz, an upstream reading the token) would see another
// agent, tier or audience than the one MeshGuard decided on. With
// JWT_SECRET, whoever else holds the secret writes the JSON, so the
// repeat need not be MeshGuard's own doing.
func TestRepeatedMembersAreRefused(t *testing.T) {
	t.Parallel()
	// with appends extra members to a JSON object.
	with := func(obj []byte, extra string) []byte {
		return append(obj[:len(obj)-1:len(obj)-1], ","+extra+"}"...)
	}
	tests := []struct {
		name   string
		hmac   bool
		edit   func(e *testEnv, hdr, payload []byte) ([]byte, []byte)
		detail string // "" for the control: it verifies
	}{
		{"control: signed as built", false, func(_ *testEnv, h, p []byte) ([]byte, []byte) { return h, p }, ""},
		{"control: HS256", true, func(_ *testEnv, h, p []byte) ([]byte, []byte) { return h, p }, ""},
		{"sub twice", false, func(_ *testEnv, h, p []byte) ([]byte, []byte) {
			return h, []byte(strings.Replace(string(p), `{`, `{"sub":"agent_someone_else",`, 1))
		}, `claims: member "sub" appears twice`},
		{"sub twice, HS256 from another holder of JWT_SECRET", true, func(_ *testEnv, h, p []byte) ([]byte, []byte) {
			return h, []byte(strings.Replace(string(p), `{`, `{"sub":"agent_someone_else",`, 1))
		}, `claims: member "sub" appears twice`},
		{"tier twice", false, func(_ *testEnv, h, p []byte) ([]byte, []byte) { return h, with(p, `"tier":"privileged"`) },
			`claims: member "tier" appears twice`},
		{"aud twice", true, func(_ *testEnv, h, p []byte) ([]byte, []byte) { return h, with(p, `"aud":"elsewhere"`) },
			`claims: member "aud" appears twice`},
		{"a repeat inside a nested claim", false, func(_ *testEnv, h, p []byte) ([]byte, []byte) {
			return h, with(p, `"x":[{"a":1,"a":2}]`)
		}, `claims: member "a" appears twice`},
		{"an escaped spelling of the same claim", false, func(_ *testEnv, h, p []byte) ([]byte, []byte) {
			return h, with(p, `"\u0073ub":"agent_someone_else"`)
		}, `claims: member "sub" appears twice`},
		{"alg twice in the header", false, func(_ *testEnv, h, p []byte) ([]byte, []byte) { return with(h, `"alg":"EdDSA"`), p },
			`header: member "alg" appears twice`},
		{"kid twice in the header", false, func(_ *testEnv, h, p []byte) ([]byte, []byte) { return with(h, `"kid":"other"`), p },
			`header: member "kid" appears twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, AlgEdDSA, withSecret(testSecret))
			hdr := e.header(t)
			key, secret := e.current(t), []byte(nil)
			if tc.hmac {
				hdr = map[string]any{"alg": AlgHS256, "typ": "JWT"}
				key, secret = nil, testSecret
			}
			h, err := json.Marshal(hdr)
			if err != nil {
				t.Fatal(err)
			}
			p, err := json.Marshal(e.claims())
			if err != nil {
				t.Fatal(err)
			}
			h, p = tc.edit(e, h, p)
			_, err = e.verifier.Verify(context.Background(), signRaw(t, key, secret, h, p))
			switch {
			case tc.detail == "" && err != nil:
				t.Fatalf("the control token is refused: %v", err)
			case tc.detail != "" && (!errors.Is(err, ErrTokenMalformed) || !strings.Contains(err.Error(), tc.detail)):
				t.Fatalf("Verify error = %v, want ErrTokenMalformed saying %s", err, tc.detail)
			}
		})
	}
}

// FuzzRepeatedMember: checkMembers, the byte scan that refuses repeated
// header parameters and claims, agrees with a slow walk over
// json.Decoder's tokens on every valid JSON value: it finds a repeat
// exactly when two names of one object are equal as encoding/json matches
// them (ignoring case), and names one of them.
func FuzzRepeatedMember(f *testing.F) {
	for _, s := range []string{
		`{"alg":"EdDSA","kid":"k","typ":"JWT"}`, `{"alg":"none","alg":"EdDSA"}`, `{"sub":"a","\u0073ub":"b"}`,
		`{"sub":"a","SUB":"b"}`, `{"sub":"a","ſub":"b"}`,
		`{"act":{"sub":"a","act":{"sub":"b","sub":"c"}}}`, `[{"a":1},{"a":1}]`, `{"a":[1,{"b":{}}],"b":"\"}"}`,
		`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"ka":0,"kb":0,"kc":0,"kd":0,"ke":0,"kf":0,"kg":0,"k0":1}`,
		`{"\xff":1,"\xfe":2}`, `{`, `"x`, `{"a":1,}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return // checkMembers is only given what json.Unmarshal accepted
		}
		err := checkMembers(data, nil)
		want, wantFound := slowRepeated(json.NewDecoder(bytes.NewReader(data)))
		if found := errors.Is(err, errMemberTwice); found != wantFound || (err != nil && !found) {
			t.Fatalf("%s: checkMembers %v, the decoder's walk found %v (%q)", data, err, wantFound, want)
		}
		if wantFound && !strings.Contains(err.Error(), "member "+edge.QuoteName(want)+" ") {
			t.Fatalf("%s: %v does not name the repeat %q", data, err, want)
		}
	})
}

// slowRepeated finds a repeated name the slow way, over the decoder's
// tokens, comparing names as encoding/json does (strings.EqualFold).
func slowRepeated(dec *json.Decoder) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			if name, ok := slowRepeated(dec); ok {
				return name, true
			}
		}
		_, _ = dec.Token()
	case json.Delim('{'):
		var seen []string
		for dec.More() {
			k, _ := dec.Token()
			for _, s := range seen {
				if strings.EqualFold(s, k.(string)) {
					return k.(string), true
				}
			}
			seen = append(seen, k.(string))
			if name, ok := slowRepeated(dec); ok {
				return name, true
			}
		}
		_, _ = dec.Token()
	}
	return "", false
}
