// Package testenv decides what a test does when something it needs from
// the machine — a PostgreSQL server, a Jaeger binary — is missing: it
// skips, unless the need's MESHGUARD_REQUIRE_* switch says the test must
// run (as `make test` does), when it fails. CI must never pass by
// skipping.
//
// Every switch follows one rule: unset, empty, 0 or false skip; 1 or true
// require; any other value fails the test, so a mistyped switch cannot
// quietly turn into a skip.
package testenv

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Required reads the switch named name from v by the rule above.
func Required(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: expected 1 (required) or 0", name, v)
	}
	return b, nil
}

// Missing ends t because what it needs is missing (missing says what and
// how to get it): t.Fatal if the environment variable requireVar requires
// it or holds a value the rule does not know, t.Skip otherwise.
func Missing(t testing.TB, requireVar, missing string) {
	t.Helper()
	req, err := Required(requireVar, os.Getenv(requireVar))
	switch {
	case err != nil:
		t.Fatalf("%v (and %s)", err, missing)
	case req:
		t.Fatalf("%s; %s is set, so this is a failure", missing, requireVar)
	default:
		t.Skip(missing)
	}
}
