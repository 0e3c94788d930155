package edge_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/meshguard/meshguard/internal/edge"
)

// TestCheckText pins the one text rule the engine (engine.CheckText),
// identity, the catalogue and the admin API share: the limit is inclusive,
// and exactly C0 and DEL are control characters (a space, '~' and
// non-ASCII text are not).
func TestCheckText(t *testing.T) {
	tests := []struct {
		v     string
		limit int
		want  error
	}{
		{"", 0, nil},
		{"abcd", 4, nil},
		{"abcde", 4, edge.ErrTextTooLong},
		{"a b~c", 8, nil},
		{"caf\u00e9 \u2603", 16, nil},
		{"a\x00b", 8, edge.ErrTextControl},
		{"a\x1fb", 8, edge.ErrTextControl},
		{"a\tb", 8, edge.ErrTextControl},
		{"a\x7fb", 8, edge.ErrTextControl},
		{"a\xffb", 8, edge.ErrTextNotUTF8},
		// Length is checked first, then UTF-8: the cheapest, most
		// telling complaint wins.
		{"a\xff\x00bcdef", 4, edge.ErrTextTooLong},
		{"a\xff\x00", 8, edge.ErrTextNotUTF8},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.v)+"/"+strconv.Itoa(tc.limit), func(t *testing.T) {
			if err := edge.CheckText(tc.v, tc.limit); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("CheckText = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestHasSpaceOrControl pins the token rule: the text rule's control
// characters, and a space, but nothing else.
func TestHasSpaceOrControl(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"/a/b~c", false},
		{"caf\u00e9", false},
		{"\u0085", false},
		{"a b", true},
		{"a\tb", true},
		{"a\x00", true},
		{"a\x7f", true},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.v), func(t *testing.T) {
			if got := edge.HasSpaceOrControl(tc.v); got != tc.want {
				t.Fatalf("HasSpaceOrControl = %v, want %v", got, tc.want)
			}
		})
	}
}
