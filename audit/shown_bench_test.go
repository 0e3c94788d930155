package audit_test

import (
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// BenchmarkApprovalShown is what raising (or retrying) an approval pays
// to show its query and context redacted: once per approve decision,
// beside the store's write transaction.
func BenchmarkApprovalShown(b *testing.B) {
	ac := audit.ArgumentsConfig{}
	ctx := map[string]any{"query.to": "eve@evil.example", "query.token": "s3cret", "header.x-env": "prod",
		"arguments.auth": map[string]any{"user": "ann", "password": "hunter2"}}
	const q = "to=eve@evil.example&token=s3cret&subject=hello+world&cc=ann@ours.example"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ac.ShownQuery(q); !ok {
			b.Fatal("not shown")
		}
		if _, _, err := ac.ShownContext(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
