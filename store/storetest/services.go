package storetest

import (
	"errors"
	"testing"

	"github.com/meshguard/meshguard/identity"
)

func serviceTests() []test {
	return []test{{"PutListDelete", testServices}}
}

func testServices(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	ctx := t.Context()
	if got, err := b.ListServices(ctx); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty store: %v %v", got, err)
	}
	for _, s := range []struct{ name, spec string }{{"orders", `{"v":1}`}, {"billing", `{"v":1}`}, {"orders", `{"v":2}`}} {
		if err := b.PutService(ctx, s.name, s.spec); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.ListServices(ctx)
	if err != nil || len(got) != 2 || got[0].Name != "billing" || got[1].Name != "orders" || got[1].Spec != `{"v":2}` || got[1].UpdatedAt.IsZero() {
		t.Fatalf("list: %+v %v", got, err)
	}
	if err := b.DeleteService(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteService(ctx, "orders"); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if got, _ := b.ListServices(ctx); len(got) != 1 || got[0].Name != "billing" {
		t.Fatalf("after delete: %+v", got)
	}
}
