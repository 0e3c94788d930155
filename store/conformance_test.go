package store_test

import (
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/storetest"
)

func TestMain(m *testing.M) {
	// Every Close must stop the pools' goroutines.
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		s, err := store.OpenSQLite(t.Context(), filepath.Join(dir, storetest.FileName(t)+".db"))
		if err != nil {
			t.Fatalf("OpenSQLite: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
