package policy

import "testing"

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		// The examples of docs/policies.md (Patterns).
		{"read:*", "read:docs", true},
		{"read:*", "read:", true},
		{"read:*", "read:a/b:c", true},
		{"*:email", "write:email", true},
		{"*:email", "read:emails", false},
		{"write:email/*", "write:email/drafts", true},
		{"write:email/*", "write:email", false},
		{"*", "", true},
		{"*", "anything:at/all", true},
		// Anchored at both ends.
		{"read", "read:docs", false},
		{"docs", "read:docs", false},
		// Case-sensitive.
		{"read:*", "Read:docs", false},
		// Everything but * is literal.
		{"read:?", "read:a", false},
		{"read:?", "read:?", true},
		{"read:[ab]", "read:a", false},
		{"read:[ab]", "read:[ab]", true},
		{`a\*`, `a\xyz`, true},
		{`a\*`, `a*`, false},
		// Middle pieces in order, non-overlapping.
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"ab*ba", "aba", false},
		{"ab*ba", "abba", true},
		{"a**b", "ab", true},
		{"*a*", "bab", true},
		{"*a*", "bbb", false},
		{"", "", true},
		{"", "x", false},
		// Prefix and suffix must not overlap.
		{"ab*b", "ab", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
	}
	for _, tc := range tests {
		if got := CompileGlob(tc.pattern).Match(tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func BenchmarkGlobMatch(b *testing.B) {
	g := CompileGlob("write:*/drafts/*")
	b.ReportAllocs()
	for b.Loop() {
		if !g.Match("write:email/drafts/42") {
			b.Fatal("no match")
		}
	}
}
