package engine_test

import (
	"testing"

	"github.com/meshguard/meshguard/engine"
)

// TestMethodOverrideInEveryPairOfTheQuery: a _method parameter is found
// wherever it stands in a POST's query (docs/enforcement.md: a method
// override naming another method is a 400), including right after a
// leading separator, which servers skip as an empty pair: "?&_method=DELETE"
// is a DELETE to Spring and Symfony.
func TestMethodOverrideInEveryPairOfTheQuery(t *testing.T) {
	decideSpellings(t, []spelling{
		{"after a leading '&'", engine.Request{Method: "POST", Path: "/contacts/1?&_method=DELETE"}, 400, "", nil},
		{"after a leading ';'", engine.Request{Method: "POST", Path: "/contacts/1?;_method=DELETE"}, 400, "", nil},
		{"after empty pairs", engine.Request{Method: "POST", Path: "/contacts/1?&&a=1&_method=DELETE"}, 400, "", nil},
		{"first", engine.Request{Method: "POST", Path: "/contacts/1?_method=DELETE&a=1"}, 400, "", nil},
		{"empty pairs and no override", engine.Request{Method: "POST", Path: "/contacts/1?&&a=1&"}, 200, "rest", nil},
	})
}
