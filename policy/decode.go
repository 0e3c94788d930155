package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// decoder walks yaml.Node trees by hand instead of yaml.Unmarshal so that
// every error can name the line and the full field path, unknown keys are
// refused, and wrong types say what was expected. It collects all errors of
// a file rather than stopping at the first.
type decoder struct {
	file string
	errs ErrorList
}

func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// kindName describes a node for "expected X, got Y" messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return quoteShort(n.Value)
	}
	return "nothing"
}

// maxQuoted bounds a value or key repeated in an error: a file that is not
// a policy at all (a stray document, a mislinked file) is one long scalar
// or key, which the error need not repeat to say where it is.
const maxQuoted = 64

// quoteShort quotes s, cut to maxQuoted runes.
func quoteShort(s string) string {
	if c := cut(s); c != s {
		return fmt.Sprintf("%q (%d bytes)", c, len(s))
	}
	return fmt.Sprintf("%q", s)
}

// cut returns s, or its first maxQuoted runes and "…".
func cut(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return s
	}
	return string([]rune(s)[:maxQuoted]) + "…"
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func index(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

// fields iterates a mapping's key/value pairs, refusing anything but a
// mapping, duplicate keys and keys the caller does not know (known returns
// false). It returns false when n is not a mapping.
func (d *decoder) fields(n *yaml.Node, field string, known []string, fn func(key string, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		d.fail(n, field, "expected a mapping, got %s", kindName(n))
		return false
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, field, "expected a string key, got %s", kindName(k))
			continue
		}
		if seen[k.Value] {
			d.fail(k, join(field, cut(k.Value)), "duplicate key")
			continue
		}
		seen[k.Value] = true
		if known != nil && !contains(known, k.Value) {
			d.fail(k, join(field, cut(k.Value)), "unknown key (expected one of %s)", strings.Join(known, ", "))
			continue
		}
		fn(k.Value, v)
	}
	return true
}

// refuseAliases fails on the first YAML alias in n. Aliases are refused in
// every file this package reads: a few bytes of `*anchor` can stand for
// megabytes of policy (a "billion laughs" document), which would get past
// every size limit. Anchors alone are harmless and allowed.
func (d *decoder) refuseAliases(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		d.fail(n, "", "YAML aliases (*%s) are not supported; write the value out", n.Value)
		return false
	}
	for _, c := range n.Content {
		if !d.refuseAliases(c) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// str decodes a scalar as a string. Numbers and booleans are refused so that
// `effect: yes` or `actions: [1]` are reported, not silently converted;
// looseStr accepts them for free-text fields such as version.
func (d *decoder) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.fail(n, field, "expected a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) looseStr(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, field, "expected a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(n *yaml.Node, field string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, true
		}
	}
	d.fail(n, field, "expected true or false, got %s", kindName(n))
	return false, false
}

func (d *decoder) number(n *yaml.Node, field string) (float64, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	d.fail(n, field, "expected a number, got %s", kindName(n))
	return 0, false
}

// integer decodes a whole number within [lo, hi].
func (d *decoder) integer(n *yaml.Node, field string, lo, hi int) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err == nil && v >= int64(lo) && v <= int64(hi) {
			return int(v), true
		}
	}
	d.fail(n, field, "expected a whole number from %d to %d, got %s", lo, hi, kindName(n))
	return 0, false
}

// strList decodes a list of strings; a single string is accepted as a
// one-element list only where oneOK is set (e.g. `matches: "*.pdf"`).
func (d *decoder) strList(n *yaml.Node, field string, oneOK bool) ([]string, bool) {
	if oneOK && n.Kind == yaml.ScalarNode {
		s, ok := d.str(n, field)
		if !ok {
			return nil, false
		}
		return []string{s}, true
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, field, "expected a list of strings, got %s", kindName(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, c := range n.Content {
		s, good := d.str(c, index(field, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

// scalarValue decodes a literal for context conditions.
func (d *decoder) scalarValue(n *yaml.Node, field string) (Value, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, field, "expected a string, number, boolean or null, got %s", kindName(n))
		return Value{}, false
	}
	switch n.Tag {
	case "!!null":
		return Value{Kind: KindNull}, true
	case "!!bool":
		b, ok := d.boolean(n, field)
		return Value{Kind: KindBool, Bool: b}, ok
	case "!!int", "!!float":
		f, ok := d.number(n, field)
		return Value{Kind: KindNumber, Num: f}, ok
	case "!!str":
		return Value{Kind: KindString, Str: n.Value}, true
	}
	d.fail(n, field, "expected a string, number, boolean or null, got %s", n.Tag)
	return Value{}, false
}
