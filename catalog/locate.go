package catalog

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// field is where in a service a problem is: a key, an index of its list
// (-1 for none) and a key of that element ("" for none).
type field struct {
	key string
	idx int
	sub string
}

func key(k string) field                  { return field{key: k, idx: -1} }
func elem(k string, i int) field          { return field{key: k, idx: i} }
func sub(k string, i int, s string) field { return field{key: k, idx: i, sub: s} }

// String is the path policies use too: routes[0].action.
func (f field) String() string {
	s := f.key
	if f.idx >= 0 {
		s += "[" + strconv.Itoa(f.idx) + "]"
	}
	if f.sub != "" {
		s += "." + f.sub
	}
	return s
}

// lines finds where a SERVICES_FILE's entries and fields are written, in
// the YAML nodes of the file: the decoded services carry no lines.
type lines struct {
	items []*yaml.Node // the elements of services: [...]
}

func locate(doc *yaml.Node) lines {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if seq := value(doc, "services"); seq != nil && seq.Kind == yaml.SequenceNode {
		return lines{items: seq.Content}
	}
	return lines{}
}

// value is the node of key in mapping m, or nil. Aliases and merge keys
// are not followed: a field they supply is placed at its entry's line.
func value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// line is where field f of entry i is written: the value, else the
// nearest enclosing node found; 0 when the entry is not found.
func (l lines) line(i int, f field) int {
	if i < 0 || i >= len(l.items) {
		return 0
	}
	n := l.items[i]
	if v := value(n, f.key); v != nil {
		n = v
		if f.idx >= 0 && v.Kind == yaml.SequenceNode && f.idx < len(v.Content) {
			n = v.Content[f.idx]
			if sv := value(n, f.sub); f.sub != "" && sv != nil {
				n = sv
			}
		}
	}
	return n.Line
}

// holding returns the entries whose lines hold line: from an entry's
// first line to the line before the next one's (or its own first line,
// when several entries share it, as in a flow list).
func (l lines) holding(line int) []int {
	var out []int
	for i, n := range l.items {
		end := lastLine(n)
		if i+1 < len(l.items) {
			end = max(n.Line, l.items[i+1].Line-1)
		}
		if n.Line <= line && line <= end {
			out = append(out, i)
		}
	}
	return out
}

// lastLine is the last line a node's own content starts on.
func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

func (l lines) name(i int) string {
	if v := value(l.items[i], "name"); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

var (
	yamlLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (.*) not found in type [\w.]+$`)
)

// decodeErrors turns the decoder's error into located errors: a syntax
// error has one line, a *yaml.TypeError one line per problem. dirty marks
// the entries holding a problem: their decoded values are partial and
// are not validated further.
func (l lines) decodeErrors(file string, err error, p *problems, dirty []bool) {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		e := &Error{File: file, Msg: m}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
			in := l.holding(e.Line)
			for _, i := range in {
				if i < len(dirty) {
					dirty[i] = true
				}
			}
			if len(in) == 1 {
				e.Entry = entry(in[0], l.name(in[0]))
			}
		}
		if um := unknownField.FindStringSubmatch(e.Msg); um != nil {
			e.Field, e.Msg = um[1], "unknown key"
		}
		p.add(e)
	}
}
