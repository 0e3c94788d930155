package engine_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/meshguard/meshguard/engine"
)

// TestRefusedInputStaysOffTheSpan: a request refused for its own input
// (an oversized path or host, invalid UTF-8, a control character) is
// still a traced denial, and its span must not carry that input raw. An
// invalid UTF-8 string cannot be marshalled as OTLP (a protobuf string),
// so one such span would fail the exporter's whole batch, other
// decisions' spans with it; an oversized one is the caller's to size.
func TestRefusedInputStaysOffTheSpan(t *testing.T) {
	for _, tc := range []struct {
		name       string
		host, path string
	}{
		{"invalid UTF-8 in the path", "crm.internal", "/contacts/\xff\xfe"},
		{"invalid UTF-8 in the host", "crm\xff.internal", "/contacts"},
		{"a control character in the path", "crm.internal", "/contacts/\x1b[2J"},
		{"an oversized path", "crm.internal", "/" + strings.Repeat("a", engine.MaxPathLen+100)},
		{"an oversized host", strings.Repeat("h", 4096) + ".internal", "/contacts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, e, rec := tracedMesh(t, sdktrace.AlwaysSample())
			d := check(t, e, engine.Request{Token: m.MailT, Method: "GET", Host: tc.host, Path: tc.path})
			if d.Allowed || d.Status != 400 {
				t.Fatalf("want a 400 denial, got %+v", d)
			}
			s := spanNamed(t, rec, engine.SpanCheck)
			for _, kv := range s.Attributes() {
				v := kv.Value.String()
				limit := engine.MaxPathLen
				if kv.Key == engine.AttrHost {
					limit = engine.MaxHostLen
				}
				if !utf8.ValidString(v) || len(v) > limit || strings.ContainsAny(v, "\x1b\x00") {
					t.Errorf("attribute %s = %.60q… (%d bytes): raw refused input on the span", kv.Key, v, len(v))
				}
				if _, err := proto.Marshal(&commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}); err != nil {
					t.Errorf("attribute %s cannot be exported as OTLP: %v", kv.Key, err)
				}
			}
		})
	}
}
