package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// toolCall2K is a tools/call of about 2 KB, most of it arguments.
func toolCall2K() []byte {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"ann@ours.example","subject":"weekly report","options":{"cc":["bob@ours.example"]},"body":"`)
	b.WriteString(strings.Repeat("lorem ipsum dolor sit amet ", 68))
	b.WriteString(`"}}}`)
	return []byte(b.String())
}

// dropStore keeps no record: the benchmark below measures what the
// writer costs a decision (encoding, digest, sealing), not a database's
// commit, as BenchmarkCheckTraced drops its spans.
type dropStore struct{}

func (dropStore) AppendAudit(context.Context, []audit.Record) error { return nil }
func (dropStore) LastAuditHash(context.Context) (string, error)     { return audit.GenesisHash, nil }

// BenchmarkCheckAuditedCall measures a 2 KB MCP tool call against a plain
// request: "off" decides without a recorder, so the arguments' digest (the
// audit writer's) is not computed; "on" records through the batching
// writer, which digests the arguments before sealing; "on-arguments" also
// records them (AUDIT_ARGUMENTS), redacted. The writer's store drops the
// records.
func BenchmarkCheckAuditedCall(b *testing.B) {
	m := enginetest.NewMesh(b, enginetest.Options{})
	f := m.F
	body := toolCall2K()
	if len(body) < 1900 || len(body) > 2100 {
		b.Fatalf("body of %d bytes, want about 2 KB", len(body))
	}
	writer := func(ac audit.ArgumentsConfig) *audit.Writer {
		// A minute's lag bound: on a busy machine the flusher may not run
		// for half a second, and the writer would refuse decisions.
		w, err := audit.NewWriter(context.Background(), dropStore{}, audit.WriterConfig{FlushInterval: 50 * time.Millisecond,
			MaxLag: time.Minute, Arguments: ac})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = w.Close(context.Background()) })
		return w
	}
	plain := engine.Request{Token: m.MailT, Method: "POST", Host: "smtp.internal", Path: "/email?to=a@example.com", SourceAddress: "10.0.0.7"}
	call := engine.Request{Token: m.MailT, Method: "POST", Host: "mail.mesh", Path: "/mcp", SourceAddress: "10.0.0.7",
		RouteProtocol: agentproto.MCP, RouteService: "mail", Body: body}
	for _, tc := range []struct {
		name     string
		recorder engine.Recorder
		req      engine.Request
	}{
		{"plain/off", nil, plain}, {"plain/on", writer(audit.ArgumentsConfig{}), plain},
		{"call/off", nil, call}, {"call/on", writer(audit.ArgumentsConfig{}), call},
		{"call/on-arguments", writer(audit.ArgumentsConfig{Record: true}), call},
	} {
		e := engineWith(b, f, tc.recorder, nil)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := tc.req
				if _, err := e.Check(context.Background(), &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
