package server

import (
	"log/slog"
	"os"
	"testing"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/xds"
)

// TestIdleRegenerationMakesNoVersion: what the publisher does every
// publishEvery, and on every change signal, makes no new version when
// nothing the resources hold has changed: an idle server pushes nothing.
// (It used to push a new version to every node every 10 s.)
func TestIdleRegenerationMakesNoVersion(t *testing.T) {
	ctx := t.Context()
	data, err := os.ReadFile("../examples/services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Parse("services.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	srv := xds.NewServer(ctx, nil)
	pub := newPublisher(publishInputs{XDS: srv}, &config.Config{}, slog.New(slog.DiscardHandler))
	pub.start(xds.Options{ListenerPort: 10000, AuthzHost: "127.0.0.1", AuthzPort: 3101})
	if err := pub.setCatalogue(ctx, c); err != nil {
		t.Fatal(err)
	}
	want := srv.Status().Version
	for range 100 {
		if err := pub.regenerate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Status().Version; got != want {
		t.Fatalf("100 idle regenerations took the version from %s to %s", want, got)
	}
}
