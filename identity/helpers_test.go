package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/trust"
)

// fakeClock is a settable clock shared by everything in a test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeAgents is an in-memory AgentSource.
type fakeAgents struct {
	mu     sync.Mutex
	agents map[string]Agent
	err    error           // returned by every GetAgent when set
	hook   func(id string) // called (unlocked) before answering
	calls  map[string]int  // GetAgent calls per id
}

func newFakeAgents(agents ...Agent) *fakeAgents {
	f := &fakeAgents{agents: map[string]Agent{}, calls: map[string]int{}}
	for _, a := range agents {
		f.agents[a.ID] = a
	}
	return f
}

func (f *fakeAgents) GetAgent(ctx context.Context, id string) (Agent, error) {
	f.mu.Lock()
	hook := f.hook
	f.calls[id]++
	f.mu.Unlock()
	if hook != nil {
		hook(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Agent{}, f.err
	}
	a, ok := f.agents[id]
	if !ok {
		return Agent{}, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	return a, nil
}

func (f *fakeAgents) put(a Agent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agents[a.ID] = a
}

func (f *fakeAgents) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeAgents) setHook(h func(string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

func (f *fakeAgents) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// fakeKeyStore is an in-memory KeyStore with the store's RotateKey contract.
type fakeKeyStore struct {
	mu      sync.Mutex
	keys    []StoredKey
	listErr error
}

func (s *fakeKeyStore) ListKeys(context.Context) ([]StoredKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listErr != nil {
		return nil, s.listErr
	}
	return slices.Clone(s.keys), nil
}

func (s *fakeKeyStore) RotateKey(_ context.Context, next StoredKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.keys {
		if s.keys[i].KID == next.KID {
			return fmt.Errorf("key %s: %w", next.KID, ErrConflict)
		}
		if s.keys[i].RetiredAt.IsZero() {
			s.keys[i].RetiredAt = next.CreatedAt
		}
	}
	s.keys = append(s.keys, next)
	return nil
}

func (s *fakeKeyStore) DeleteKey(_ context.Context, kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.keys {
		if s.keys[i].KID == kid {
			s.keys = slices.Delete(s.keys, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("key %s: %w", kid, ErrNotFound)
}

func (s *fakeKeyStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// fakeRevoked is an in-memory RevokedTokens.
type fakeRevoked struct {
	mu   sync.Mutex
	jtis map[string]bool
	err  error
}

func (r *fakeRevoked) IsTokenRevoked(_ context.Context, jti string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.jtis[jti], r.err
}

func (r *fakeRevoked) revoke(jti string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jtis[jti] = true
}

// testSecret is an HS256 secret of the minimum length.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// testEnv wires Keys, Issuer and Verifier over fakes with one fake clock.
type testEnv struct {
	clock    *fakeClock
	agents   *fakeAgents
	store    *fakeKeyStore
	revoked  *fakeRevoked
	keys     *Keys
	issuer   *Issuer
	verifier *Verifier
	agent    Agent
}

type envOption func(*KeysConfig, *VerifierConfig)

func withSecret(secret []byte) envOption {
	return func(_ *KeysConfig, v *VerifierConfig) { v.HS256Secret = secret }
}

func withMaxTTL(d time.Duration) envOption {
	return func(k *KeysConfig, _ *VerifierConfig) { k.MaxTTL = d }
}

func newTestEnv(tb testing.TB, alg string, opts ...envOption) *testEnv {
	tb.Helper()
	e := &testEnv{
		clock:   newFakeClock(),
		store:   &fakeKeyStore{},
		revoked: &fakeRevoked{jtis: map[string]bool{}},
	}
	e.agent = Agent{
		ID: NewAgentID(), Name: "billing-bot", TrustTier: trust.Trusted,
		Tags: []string{"billing", "support"}, Status: StatusActive,
		CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now(),
	}
	e.agents = newFakeAgents(e.agent)
	kc := KeysConfig{Now: e.clock.Now}
	vc := VerifierConfig{Agents: e.agents, Revoked: e.revoked, Now: e.clock.Now}
	for _, o := range opts {
		o(&kc, &vc)
	}
	var err error
	if e.keys, err = NewKeys(e.store, kc); err != nil {
		tb.Fatal(err)
	}
	if err := e.keys.EnsureKey(context.Background(), alg); err != nil {
		tb.Fatal(err)
	}
	vc.Keys = e.keys
	if e.verifier, err = NewVerifier(vc); err != nil {
		tb.Fatal(err)
	}
	if e.issuer, err = NewIssuer(IssuerConfig{Keys: e.keys, Now: e.clock.Now}); err != nil {
		tb.Fatal(err)
	}
	return e
}

// issue mints a token for the env's agent with the default TTL.
func (e *testEnv) issue(tb testing.TB) (string, Claims) {
	tb.Helper()
	tok, c, err := e.issuer.Issue(e.agent, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return tok, c
}

// current is the keyring's signing key.
func (e *testEnv) current(tb testing.TB) *signingKey {
	tb.Helper()
	k := e.keys.Keyring().current
	if k == nil {
		tb.Fatal("no current key")
	}
	return k
}

// header returns a valid header for the current key, to be altered.
func (e *testEnv) header(tb testing.TB) map[string]any {
	k := e.current(tb)
	return map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"}
}

// claims returns valid claims for the env's agent at the clock's now.
func (e *testEnv) claims() map[string]any {
	now := e.clock.Now().Unix()
	return map[string]any{
		"iss": DefaultIssuer, "sub": e.agent.ID, "aud": DefaultAudience,
		"name": e.agent.Name, "tier": "trusted", "tags": []string{"billing"},
		"iat": now, "nbf": now, "exp": now + 3600, "jti": "jti-test-1",
	}
}

// signToken builds a compact JWS over arbitrary header and claims, signed
// by key, or with HMAC-SHA256 and secret when key is nil.
func signToken(tb testing.TB, key *signingKey, secret []byte, hdr, claims map[string]any) string {
	tb.Helper()
	h, err := json.Marshal(hdr)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return signRaw(tb, key, secret, h, p)
}

func signRaw(tb testing.TB, key *signingKey, secret, hdr, payload []byte) string {
	tb.Helper()
	input := b64.EncodeToString(hdr) + "." + b64.EncodeToString(payload)
	var sig []byte
	if key != nil {
		var err error
		if sig, err = key.sign([]byte(input)); err != nil {
			tb.Fatal(err)
		}
	} else {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		sig = mac.Sum(nil)
	}
	return input + "." + b64.EncodeToString(sig)
}
