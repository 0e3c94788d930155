package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
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

// keyValues prints one object as aligned "key: value" lines, unless
// --quiet: the text form of every `show` command (--json prints the object).
// An empty key continues the value above it (a list, one item a line).
func (a *app) keyValues(kvs [][2]string) {
	if a.g.quiet {
		return
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 0, 1, ' ', 0)
	for _, kv := range kvs {
		if kv[0] == "" {
			fmt.Fprintf(tw, "\t%s\n", kv[1])
			continue
		}
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	_ = tw.Flush()
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
