package cli

import (
	"encoding/json"
	"fmt"
	"strings"
)

// printJSON writes v as indented JSON to stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// say prints a line unless --quiet.
func (a *app) say(format string, args ...any) {
	if !a.g.quiet {
		fmt.Fprintf(a.Stdout, format+"\n", args...)
	}
}

// printJSONLine writes v as one line of JSON to stdout (a stream of
// records, one a line).
func (a *app) printJSONLine(v any) error {
	enc := json.NewEncoder(a.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// count is n and its noun, singular for exactly one: count(1, "rule") is
// "1 rule", count(2, "policy") is "2 policies". One helper, so no message
// says "1 errors".
func count[N ~int | ~int64](n N, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
