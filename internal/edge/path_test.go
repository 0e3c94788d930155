package edge

import "testing"

func TestNormalizeAndEscapePath(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, escaped, normal string }{
		{"/docs/readme", "/docs/readme", "/docs/readme"},
		{"/docs/%70rivate", "/docs/%70rivate", "/docs/private"},
		{"/a!b%21c", "/a!b%21c", "/a!b%21c"}, // a sub-delimiter and its escape stay apart
		{"/wiki/Foo_(bar)*'", "/wiki/Foo_(bar)*'", "/wiki/Foo_(bar)*'"},
		{"/a%2bb%3a", "/a%2bb%3a", "/a%2Bb%3A"},
		{"/%7euser", "/%7euser", "/~user"},
		{"/caf\xc3\xa9\"<>", "/caf%C3%A9%22%3C%3E", "/caf%C3%A9%22%3C%3E"},
		{"/a\\b c", "/a%5Cb%20c", "/a%5Cb%20c"},
	}
	for _, tc := range tests {
		esc := EscapePath(tc.in)
		n, ok := NormalizePath(esc)
		if esc != tc.escaped || !ok || n != tc.normal {
			t.Errorf("%q: escaped %q, normalised %q (%v); want %q, %q", tc.in, esc, n, ok, tc.escaped, tc.normal)
		}
	}
	for _, bad := range []string{"/a%", "/a%2", "/a%zz", "/%g0"} {
		if _, ok := NormalizePath(bad); ok {
			t.Errorf("NormalizePath(%q) accepted a malformed escape", bad)
		}
	}
}
