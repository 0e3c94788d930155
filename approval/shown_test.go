package approval

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestShownLines: what every surface shows of the rest of a binding. An
// A2A request's message not recorded (no AUDIT_ARGUMENTS) is shown as
// existing, with its digest, never its text; a field too large to show
// says so; a field the request had not is absent.
func TestShownLines(t *testing.T) {
	tests := []struct {
		name  string
		shown Shown
		want  [][2]string
	}{
		{"nothing", Shown{}, nil},
		{"query and context", Shown{Query: "to=eve&token=[redacted]", Context: json.RawMessage(`{"query.to":"eve"}`)},
			[][2]string{{"Query", "to=eve&token=[redacted]"}, {"Context", `{"query.to":"eve"}`}}},
		{"a message recorded", Shown{Params: json.RawMessage(`{"message":{}}`), ParamsDigest: "d1"},
			[][2]string{{"Params", `{"message":{}}`}}},
		{"a message not recorded", Shown{ParamsDigest: "d1"},
			[][2]string{{"Params", "not recorded (AUDIT_ARGUMENTS); digest d1"}}},
		{"arguments not recorded", Shown{ArgumentsDigest: "d2"},
			[][2]string{{"Arguments", "not recorded (AUDIT_ARGUMENTS); digest d2"}}},
		{"too large", Shown{ParamsDigest: "d1", Omitted: []string{"query", "params"}},
			[][2]string{{"Query", "not shown: larger than 8192 bytes"}, {"Params", "not shown: larger than 8192 bytes; digest d1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.shown.Lines()); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}
