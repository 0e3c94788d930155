package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/meshguard/meshguard/store"
)

// SecretBackend generates and keeps secrets shared by replicas.
type SecretBackend interface {
	Secret(ctx context.Context, name string, size int) ([]byte, error)
}

func secretTests() []test {
	return []test{
		{"Secret/OnceForEveryone", testSecretOnce},
		{"Secret/Invalid", testSecretInvalid},
	}
}

// testSecretOnce: concurrent first calls (as replicas starting together)
// all get the one secret stored; it survives a reopen; another name gets
// another secret.
func testSecretOnce(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	got := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			s, err := b.Secret(t.Context(), "approval-link", 32)
			if err != nil {
				t.Errorf("Secret: %v", err)
			}
			got[i] = s
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, s := range got {
		if len(s) != 32 || !bytes.Equal(s, got[0]) {
			t.Fatalf("caller %d got %x, caller 0 %x", i, s, got[0])
		}
	}
	other, err := b.Secret(t.Context(), "something-else", 32)
	if err != nil || bytes.Equal(other, got[0]) {
		t.Fatalf("another name: %x, %v", other, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := openClosed(t, open).Secret(t.Context(), "approval-link", 32)
	if err != nil || !bytes.Equal(again, got[0]) {
		t.Fatalf("after a reopen: %x, %v; want %x", again, err, got[0])
	}
}

func testSecretInvalid(t *testing.T, open func(t *testing.T) Backend) {
	b := openClosed(t, open)
	for _, c := range []struct {
		name string
		size int
	}{{"", 32}, {"x", 8}, {"x", 4096}, {string(make([]byte, 65)), 32}} {
		if _, err := b.Secret(t.Context(), c.name, c.size); !errors.Is(err, store.ErrSecretName) {
			t.Errorf("Secret(%q, %d): %v, want ErrSecretName", c.name, c.size, err)
		}
	}
	if _, err := b.Secret(t.Context(), "short", 16); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Secret(t.Context(), "short", 32); err == nil {
		t.Error("a stored secret shorter than asked was accepted")
	}
}
