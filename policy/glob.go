package policy

import "strings"

// Glob is a pattern of the one pattern language MeshGuard uses for actions,
// `matches` conditions and agent globs: `*` matches any run of characters
// (none included, `:` and `/` included); every other character is literal;
// matching is case-sensitive and anchored at both ends.
//
// Matching is a prefix test, a suffix test and an in-order search for the
// literal pieces between stars: no regexp, no backtracking, no allocation.
// (Greedy leftmost search is exact here because a star absorbs anything, so
// taking the earliest occurrence of each piece never loses a match.)
type Glob struct {
	src     string
	literal bool
}

// CompileGlob wraps a pattern. Every string is a valid pattern; callers
// validate emptiness and length where a field requires it.
func CompileGlob(p string) Glob { return Glob{src: p, literal: !strings.Contains(p, "*")} }

// String returns the pattern as written.
func (g Glob) String() string { return g.src }

// Literal reports whether the pattern has no star, i.e. matches one string.
func (g Glob) Literal() bool { return g.literal }

// Match reports whether s matches the whole pattern.
func (g Glob) Match(s string) bool {
	if g.literal {
		return s == g.src
	}
	return Match(g.src, s)
}

// Match reports whether s matches pattern p.
func Match(p, s string) bool {
	first, rest, star := strings.Cut(p, "*")
	if !star {
		return p == s
	}
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	middle, last := "", rest
	if i := strings.LastIndexByte(rest, '*'); i >= 0 {
		middle, last = rest[:i], rest[i+1:]
	}
	if !strings.HasSuffix(s, last) {
		return false
	}
	s = s[:len(s)-len(last)]
	for middle != "" {
		var piece string
		piece, middle, _ = strings.Cut(middle, "*")
		if piece == "" {
			continue
		}
		i := strings.Index(s, piece)
		if i < 0 {
			return false
		}
		s = s[i+len(piece):]
	}
	return true
}

// globs is a list of patterns that matches when any member matches.
type globs []Glob

func compileGlobs(ps []string) globs {
	out := make(globs, len(ps))
	for i, p := range ps {
		out[i] = CompileGlob(p)
	}
	return out
}

func (gs globs) Match(s string) bool {
	for _, g := range gs {
		if g.Match(s) {
			return true
		}
	}
	return false
}
