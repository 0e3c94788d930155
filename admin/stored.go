package admin

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
)

// StoredPrefix starts the file name of a stored policy in errors and in
// policy.Policy.Source: "stored:NAME".
const StoredPrefix = "stored:"

// PolicyLister lists stored policies (store.SQLite).
type PolicyLister interface {
	ListPolicies(ctx context.Context) ([]store.StoredPolicy, error)
}

// StoredPolicies is the policy.Source of the policies applied through the
// admin API. Give it to the server's loader beside the policy files:
//
//	policy.NewLoader(policy.Dir(dir), admin.NewStoredPolicies(db))
//
// A stored policy whose name a file also uses makes the load fail
// (duplicate name); POST /admin/policies refuses such names up front.
type StoredPolicies struct {
	store PolicyLister
}

// NewStoredPolicies returns the Source of the policies in s.
func NewStoredPolicies(s PolicyLister) *StoredPolicies { return &StoredPolicies{store: s} }

var _ policy.Source = (*StoredPolicies)(nil)

// Policies parses every stored policy, each as file "stored:NAME"; all
// problems are returned together as one policy.ErrorList.
func (s *StoredPolicies) Policies(ctx context.Context) ([]*policy.Policy, error) {
	stored, err := s.store.ListPolicies(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading stored policies: %w", err)
	}
	return parseStored(stored, nil)
}

// parseStored parses stored policies, skipping the names in skip.
func parseStored(stored []store.StoredPolicy, skip map[string]bool) ([]*policy.Policy, error) {
	var (
		out  []*policy.Policy
		errs policy.ErrorList
	)
	for _, sp := range stored {
		if skip[sp.Name] {
			continue
		}
		p, err := parseOneStored(sp)
		if err != nil {
			errs = append(errs, locatedList(err)...)
			continue
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// parseOneStored parses a stored policy, which must hold exactly the one
// policy its name says.
func parseOneStored(sp store.StoredPolicy) (*policy.Policy, error) {
	file := StoredPrefix + sp.Name
	ps, err := policy.Parse(file, []byte(sp.YAML))
	if err != nil {
		return nil, err
	}
	if len(ps) != 1 || ps[0].Name != sp.Name {
		return nil, policy.ErrorList{{File: file, Msg: fmt.Sprintf("the stored document does not hold exactly one policy named %q; delete it and apply it again", sp.Name)}}
	}
	return ps[0], nil
}

// locatedList returns err as a list of located errors.
func locatedList(err error) policy.ErrorList {
	les := locatedErrors(err)
	out := make(policy.ErrorList, len(les))
	for i, e := range les {
		out[i] = &policy.Error{File: e.File, Line: e.Line, Field: e.Field, Msg: e.Message}
	}
	return out
}

// document is one policy document of an applied file, cut out verbatim.
type document struct {
	name string
	yaml string
	file string // the file it came from, for errors
	line int    // the line its policy starts on, in that file
}

// splitDocuments cuts a YAML stream into one text per policy, keeping each
// document byte for byte (comments included) so a stored policy reads back
// as it was written. YAML forbids "---" and "..." at the start of a line
// inside any content (they always mark documents), so cutting there is
// exact. A piece that holds no policy (a comment before the first "---")
// joins the next one. want are the policies the whole stream parsed to; the
// pieces must parse to the same names, in order.
func splitDocuments(file string, data []byte, want []*policy.Policy) ([]document, error) {
	var pieces []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), len(data)+1)
	sc.Split(scanLinesKeepEnd)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case isMarker(line, "---"):
			if cur.Len() > 0 {
				pieces = append(pieces, cur.String())
				cur.Reset()
			}
			cur.WriteString(line)
		case isMarker(line, "..."):
			cur.WriteString(line)
			pieces = append(pieces, cur.String())
			cur.Reset()
		default:
			cur.WriteString(line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		pieces = append(pieces, cur.String())
	}
	var docs []document
	pending := ""
	for _, p := range pieces {
		// A piece that does not parse alone (a %YAML directive before its
		// "---") or holds no policy joins the next one.
		ps, err := policy.Parse(file, []byte(pending+p))
		if err != nil || len(ps) == 0 {
			pending += p
			continue
		}
		if len(ps) > 1 {
			return nil, fmt.Errorf("a piece holds %d policies", len(ps))
		}
		docs = append(docs, document{name: ps[0].Name, yaml: pending + p, file: file})
		pending = ""
	}
	if pending != "" && len(docs) > 0 {
		docs[len(docs)-1].yaml += pending // trailing comments
	}
	if len(docs) != len(want) {
		return nil, fmt.Errorf("%d pieces for %d policies", len(docs), len(want))
	}
	for i := range docs {
		// Each piece is stored alone: it must read back as its policy.
		ps, err := policy.Parse(file, []byte(docs[i].yaml))
		if err != nil || len(ps) != 1 || ps[0].Name != want[i].Name {
			return nil, fmt.Errorf("piece %d does not read back as policy %q", i+1, want[i].Name)
		}
		docs[i].line = want[i].Source.Line
	}
	return docs, nil
}

// isMarker reports whether line starts with the document marker m followed
// by the end of the line, a space or a tab.
func isMarker(line, m string) bool {
	if !strings.HasPrefix(line, m) {
		return false
	}
	rest := line[len(m):]
	return rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// scanLinesKeepEnd is bufio.ScanLines without dropping the line ends.
func scanLinesKeepEnd(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
