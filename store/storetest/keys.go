package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
)

// keyTests cover identity.KeyStore.
func keyTests() []test {
	return []test{
		{"ListKeys/Empty", testListKeysEmpty},
		{"RotateKey", testRotate},
		{"RotateKey/Conflict", testRotateConflict},
		{"RotateKey/Invalid", testRotateInvalid},
		{"RotateKey/Atomic", testRotateAtomic},
		{"ListKeys/Order", testListKeysOrder},
		{"DeleteKey", testDeleteKey},
	}
}

// base is a fixed point in time, off the microsecond, outside UTC: the
// store must hand back base truncated to the microsecond, in UTC.
const baseUnixNano = 1772362800_123456789

func baseTime() time.Time { return time.Unix(0, baseUnixNano).In(time.FixedZone("CET", 3600)) }

func newKey(kid string, created time.Time) identity.StoredKey {
	return identity.StoredKey{KID: kid, Alg: identity.AlgEdDSA, PrivateDER: []byte("der:" + kid + "\x00\xff"), CreatedAt: created}
}

func us(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// current returns the kids of the unretired keys.
func current(keys []identity.StoredKey) []string {
	var out []string
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			out = append(out, k.KID)
		}
	}
	return out
}

func mustRotate(t *testing.T, b Backend, k identity.StoredKey) {
	t.Helper()
	if err := b.RotateKey(t.Context(), k); err != nil {
		t.Fatalf("RotateKey(%s): %v", k.KID, err)
	}
}

func mustListKeys(t *testing.T, b Backend) []identity.StoredKey {
	t.Helper()
	keys, err := b.ListKeys(t.Context())
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	return keys
}

func testListKeysEmpty(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	if keys := mustListKeys(t, b); len(keys) != 0 {
		t.Errorf("ListKeys on an empty store = %v", keys)
	}
}

func testRotate(t *testing.T, open func(*testing.T) Backend) {
	base := baseTime()
	b := openClosed(t, open)
	k1, k2, k3 := newKey("k1", base), newKey("k2", base.Add(time.Hour)), newKey("k3", base.Add(2*time.Hour))
	k3.Alg = identity.AlgES256
	mustRotate(t, b, k1)
	want := []identity.StoredKey{{KID: "k1", Alg: k1.Alg, PrivateDER: k1.PrivateDER, CreatedAt: us(base)}}
	if diff := cmp.Diff(want, mustListKeys(t, b)); diff != "" {
		t.Fatalf("after the first rotation (-want +got):\n%s", diff)
	}
	mustRotate(t, b, k2)
	mustRotate(t, b, k3)
	want = []identity.StoredKey{
		{KID: "k1", Alg: k1.Alg, PrivateDER: k1.PrivateDER, CreatedAt: us(k1.CreatedAt), RetiredAt: us(k2.CreatedAt)},
		{KID: "k2", Alg: k2.Alg, PrivateDER: k2.PrivateDER, CreatedAt: us(k2.CreatedAt), RetiredAt: us(k3.CreatedAt)},
		{KID: "k3", Alg: k3.Alg, PrivateDER: k3.PrivateDER, CreatedAt: us(k3.CreatedAt)},
	}
	got := mustListKeys(t, b)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("after three rotations (-want +got):\n%s", diff)
	}
	for _, k := range got {
		if k.CreatedAt.Location() != time.UTC || (!k.RetiredAt.IsZero() && k.RetiredAt.Location() != time.UTC) {
			t.Errorf("key %s: times not in UTC: %v, %v", k.KID, k.CreatedAt, k.RetiredAt)
		}
	}
	// The caller's slice is not kept: changing it changes nothing stored.
	stored := bytes.Clone(k3.PrivateDER)
	k3.PrivateDER[0] = 'X'
	if got := mustListKeys(t, b); !bytes.Equal(got[2].PrivateDER, stored) {
		t.Errorf("stored key aliases the caller's slice")
	}
}

func testRotateConflict(t *testing.T, open func(*testing.T) Backend) {
	base := baseTime()
	b := openClosed(t, open)
	mustRotate(t, b, newKey("k1", base))
	mustRotate(t, b, newKey("k2", base.Add(time.Hour)))
	before := snapshot(t, b)
	for _, kid := range []string{"k1", "k2"} {
		err := b.RotateKey(t.Context(), newKey(kid, base.Add(2*time.Hour)))
		wantErr(t, err, identity.ErrConflict, "RotateKey("+kid+" again)")
	}
	wantUnchanged(t, b, before) // in particular k2 is still current
}

func testRotateInvalid(t *testing.T, open func(*testing.T) Backend) {
	base := baseTime()
	b := openClosed(t, open)
	mustRotate(t, b, newKey("k1", base))
	before := snapshot(t, b)
	tests := []struct {
		name string
		mod  func(*identity.StoredKey)
	}{
		{"empty kid", func(k *identity.StoredKey) { k.KID = "" }},
		{"HS256", func(k *identity.StoredKey) { k.Alg = identity.AlgHS256 }},
		{"no alg", func(k *identity.StoredKey) { k.Alg = "" }},
		{"none", func(k *identity.StoredKey) { k.Alg = "none" }},
		{"no key", func(k *identity.StoredKey) { k.PrivateDER = nil }},
		{"no CreatedAt", func(k *identity.StoredKey) { k.CreatedAt = time.Time{} }},
		{"already retired", func(k *identity.StoredKey) { k.RetiredAt = base }},
	}
	for _, tc := range tests {
		k := newKey("k2", base.Add(time.Hour))
		tc.mod(&k)
		if err := b.RotateKey(t.Context(), k); err == nil {
			t.Errorf("RotateKey with %s: no error", tc.name)
		}
	}
	wantUnchanged(t, b, before)
}

// testRotateAtomic rotates from many goroutines while others read: every
// read must see exactly one current key, and so must the end state.
func testRotateAtomic(t *testing.T, open func(*testing.T) Backend) {
	base := baseTime()
	b := openClosed(t, open)
	mustRotate(t, b, newKey("k-initial", base))
	const writers, perWriter = 6, 8
	ctx, cancel := context.WithCancel(t.Context())
	var readers, wg sync.WaitGroup
	for range 3 {
		readers.Go(func() {
			for ctx.Err() == nil {
				keys, err := b.ListKeys(ctx)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("ListKeys: %v", err)
					}
					return
				}
				if cur := current(keys); len(cur) != 1 {
					t.Errorf("a reader saw %d current keys: %v", len(cur), cur)
					return
				}
			}
		})
	}
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				k := newKey(fmt.Sprintf("k-%d-%d", w, i), base.Add(time.Duration(w*perWriter+i+1)*time.Second))
				if err := b.RotateKey(t.Context(), k); err != nil {
					t.Errorf("RotateKey(%s): %v", k.KID, err)
				}
			}
		})
	}
	wg.Wait()
	cancel()
	readers.Wait()
	keys := mustListKeys(t, b)
	if len(keys) != writers*perWriter+1 {
		t.Errorf("%d keys stored, want %d", len(keys), writers*perWriter+1)
	}
	if cur := current(keys); len(cur) != 1 {
		t.Errorf("%d current keys after concurrent rotations: %v", len(cur), cur)
	}
}

func testListKeysOrder(t *testing.T, open func(*testing.T) Backend) {
	base := baseTime()
	b := openClosed(t, open)
	// Rotation order is not creation order (a clock stepped back, or a
	// replica rotated with an older key): ListKeys sorts by CreatedAt, then kid.
	mustRotate(t, b, newKey("late", base.Add(time.Hour)))
	mustRotate(t, b, newKey("b-early", base))
	mustRotate(t, b, newKey("a-early", base))
	var kids []string
	for _, k := range mustListKeys(t, b) {
		kids = append(kids, k.KID)
	}
	if diff := cmp.Diff([]string{"a-early", "b-early", "late"}, kids); diff != "" {
		t.Errorf("ListKeys order (-want +got):\n%s", diff)
	}
}

func testDeleteKey(t *testing.T, open func(*testing.T) Backend) {
	base := baseTime()
	b := openClosed(t, open)
	for i := range 3 {
		mustRotate(t, b, newKey(fmt.Sprintf("k%d", i), base.Add(time.Duration(i)*time.Hour)))
	}
	before := mustListKeys(t, b)
	if err := b.DeleteKey(t.Context(), "k0"); err != nil {
		t.Fatalf("DeleteKey(k0): %v", err)
	}
	if diff := cmp.Diff(before[1:], mustListKeys(t, b)); diff != "" {
		t.Errorf("after DeleteKey(k0) (-want +got):\n%s", diff)
	}
	wantErr(t, b.DeleteKey(t.Context(), "k0"), identity.ErrNotFound, "DeleteKey(k0) again")
	wantErr(t, b.DeleteKey(t.Context(), ""), identity.ErrNotFound, "DeleteKey(\"\")")
	// The current key can go too (identity decides when); then there is none
	// until the next rotation.
	if err := b.DeleteKey(t.Context(), "k2"); err != nil {
		t.Fatalf("DeleteKey(current): %v", err)
	}
	if cur := current(mustListKeys(t, b)); len(cur) != 0 {
		t.Errorf("current keys after deleting the current one: %v", cur)
	}
	mustRotate(t, b, newKey("k3", base.Add(5*time.Hour)))
	if cur := current(mustListKeys(t, b)); len(cur) != 1 || cur[0] != "k3" {
		t.Errorf("current keys after a new rotation: %v", cur)
	}
}
