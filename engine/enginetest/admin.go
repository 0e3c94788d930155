package enginetest

import (
	"context"
	"testing"

	"github.com/meshguard/meshguard/policy"
)

// NewWithSources builds a Fixture whose policy loader reads the sources
// sources(f) returns — a policy.Dir and the admin API's stored policies, as
// the server has them — instead of one YAML file, with the engine built on
// that loader. The first load must succeed.
func NewWithSources(t testing.TB, opts Options, sources func(f *Fixture) []policy.Source) *Fixture {
	t.Helper()
	f := New(t, "", opts)
	f.Policies = policy.NewLoader(sources(f)...)
	if _, err := f.Policies.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.buildEngine(t, opts)
	return f
}
