package jaegertest

import "testing"

// TestTree: children under their parents, siblings and trees sorted, a
// span whose parent was not exported under a line that says so.
func TestTree(t *testing.T) {
	spans := []Span{
		{SpanID: "2", ParentSpanID: "1", OperationName: "check b"},
		{SpanID: "1", ParentSpanID: "a", OperationName: "check a"},
		{SpanID: "3", ParentSpanID: "1", OperationName: "audit"},
		{SpanID: "4", ParentSpanID: "2", OperationName: "audit"},
		{SpanID: "5", ParentSpanID: "", OperationName: "lone"},
	}
	got := Tree(spans, func(s Span) string { return s.OperationName })
	want := `(root)
└─ lone
the caller's span a (not exported)
└─ check a
   ├─ audit
   └─ check b
      └─ audit
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
