package engine_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/meshguard/meshguard/engine"
)

// TestCheckText pins the one text rule the engine and the admin API's
// filter records share: the limit is inclusive, and exactly C0 and DEL are
// control characters (a space, '~' and non-ASCII text are not).
func TestCheckText(t *testing.T) {
	tests := []struct {
		v     string
		limit int
		want  error
	}{
		{"", 0, nil},
		{"abcd", 4, nil},
		{"abcde", 4, engine.ErrTextTooLong},
		{"a b~c", 8, nil},
		{"caf\u00e9 \u2603", 16, nil},
		{"a\x00b", 8, engine.ErrTextControl},
		{"a\x1fb", 8, engine.ErrTextControl},
		{"a\tb", 8, engine.ErrTextControl},
		{"a\x7fb", 8, engine.ErrTextControl},
		{"a\xffb", 8, engine.ErrTextNotUTF8},
		// Length is checked first, then UTF-8: the cheapest, most
		// telling complaint wins.
		{"a\xff\x00bcdef", 4, engine.ErrTextTooLong},
		{"a\xff\x00", 8, engine.ErrTextNotUTF8},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.v)+"/"+strconv.Itoa(tc.limit), func(t *testing.T) {
			if err := engine.CheckText(tc.v, tc.limit); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("CheckText = %v, want %v", err, tc.want)
			}
		})
	}
}
