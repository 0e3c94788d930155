package store_test

import (
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
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

func TestConformancePostgres(t *testing.T) {
	// The suite reopens a backend for the same test: it must find the
	// same database again.
	var dbs sync.Map // storetest.FileName → URL
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		u, ok := dbs.Load(storetest.FileName(t))
		if !ok {
			u, _ = dbs.LoadOrStore(storetest.FileName(t), pgtest.NewDatabase(t))
		}
		s, err := store.OpenPostgres(t.Context(), u.(string))
		if err != nil {
			t.Fatalf("OpenPostgres: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
