package jaegertest

import (
	"slices"
	"strings"
)

// Tree draws spans as the tree their parent ids make, one line a span,
// labelled by label. A span whose parent is not among spans (the caller's,
// which nobody exported) starts a tree of its own, under a line naming
// that parent; trees and siblings are sorted by their lines, so the same
// trace draws the same way whatever the timing.
func Tree(spans []Span, label func(Span) string) string {
	byID := make(map[string]bool, len(spans))
	for _, s := range spans {
		byID[s.SpanID] = true
	}
	children := map[string][]Span{}
	var roots []string
	for _, s := range spans {
		if !byID[s.ParentSpanID] && !slices.Contains(roots, s.ParentSpanID) {
			roots = append(roots, s.ParentSpanID)
		}
		children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
	}
	slices.Sort(roots)
	var b strings.Builder
	var draw func(parent, indent string)
	draw = func(parent, indent string) {
		kids := children[parent]
		slices.SortFunc(kids, func(x, y Span) int { return strings.Compare(label(x), label(y)) })
		for i, k := range kids {
			branch, next := "├─ ", "│  "
			if i == len(kids)-1 {
				branch, next = "└─ ", "   "
			}
			b.WriteString(indent + branch + label(k) + "\n")
			draw(k.SpanID, indent+next)
		}
	}
	for _, r := range roots {
		if r == "" {
			b.WriteString("(root)\n")
		} else {
			b.WriteString("the caller's span " + r + " (not exported)\n")
		}
		draw(r, "")
	}
	return b.String()
}
