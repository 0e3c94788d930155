package store

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// TestStringEndLooksForTheQuoteOncePerEscapedQuote: finding where a
// record's string ends looks for a quote once, and once more only for
// each escaped quote, however many other escapes the string holds — a
// value an agent sends (a path of backslashes, a header of tabs a policy
// reads) must not cost the writer its length times its escapes. The end
// found is the string's closing quote.
func TestStringEndLooksForTheQuoteOncePerEscapedQuote(t *testing.T) {
	const n = 1 << 16
	for _, tc := range []struct {
		name        string
		body        string // the string's bytes after its opening quote, closing quote included
		maxSearches int
	}{
		{"plain", "abc\"", 1},
		{"empty", "\"", 1},
		{"escaped backslashes", strings.Repeat(`\\`, n) + `"`, 1},
		{"escaped control characters", strings.Repeat(`\u0001\t`, n) + `"`, 1},
		{"escaped quotes", strings.Repeat(`\"`, 3) + `"`, 4},
		{"backslashes then an escaped quote", strings.Repeat(`\\`, n) + `\"x"`, 2},
		{"an escaped backslash before the end", `a\\"`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := []byte(`"` + tc.body + `,"next":1`)
			wantEnd := 1 + len(tc.body) - 1
			end, searches := stringEnd(obj, 1)
			if end != wantEnd {
				t.Fatalf("end = %d, want %d", end, wantEnd)
			}
			if searches > tc.maxSearches {
				t.Fatalf("looked for the quote %d times, want at most %d", searches, tc.maxSearches)
			}
		})
	}
}

// TestRecordOfManyEscapesStoresItsMembers: a record whose strings are
// mostly escapes keeps every member the columns do not hold, whole.
func TestRecordOfManyEscapesStoresItsMembers(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(r *audit.Record)
	}{
		{"path of backslashes", func(r *audit.Record) { r.Path = "/" + strings.Repeat(`\`, 8<<10) + `"x` }},
		{"context of tabs", func(r *audit.Record) { r.Context = map[string]any{"header.x": strings.Repeat("\t\"", 4<<10)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := compactRecords(t, audit.GenesisHash, 1)
			tc.edit(&rs[0])
			resealed(t, rs)
			canon, err := rs[0].Canonical()
			if err != nil {
				t.Fatal(err)
			}
			body, err := encodeAuditBody(&rs[0], canon)
			if err != nil {
				t.Fatal(err)
			}
			r := &rs[0]
			c := auditColumns{id: r.ID, agentID: r.AgentID, action: r.Action, decision: r.Decision, traceID: r.TraceID, reason: r.Reason,
				source: r.Source, ts: r.Timestamp.UnixMicro(), status: r.Status, shadow: r.Shadow != nil}
			got := decodeAuditBody(body, c)
			if got.Unreadable != "" {
				t.Fatalf("unreadable: %s", got.Unreadable)
			}
			again, err := got.Canonical()
			if err != nil || string(again) != string(canon) {
				t.Fatalf("reads back as\n%.300s\nwant\n%.300s (%v)", again, canon, err)
			}
		})
	}
}
