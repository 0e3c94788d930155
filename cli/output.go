package cli

import (
	"encoding/json"
	"fmt"
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
