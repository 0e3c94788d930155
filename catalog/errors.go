package catalog

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxErrors bounds the errors a refusal lists; the rest are counted in a
// last "… and N more errors" entry.
const MaxErrors = 100

// Error is one problem of a catalogue: where it is and what was expected.
// It has the shape of a policy's located error (File, Line, Field, Msg),
// with the entry apart so that a caller can group by service.
type Error struct {
	File  string // file name, or what the service came from ("stored service crm")
	Line  int    // 1-based; 0 when unknown
	Entry string // services[2] (crm); empty for the file as a whole
	Field string // hosts[1], routes[0].action; empty for the entry as a whole
	Msg   string
}

// Path is the entry and the field: "services[2] (crm): hosts[1]".
func (e *Error) Path() string {
	switch {
	case e.Entry == "":
		return e.Field
	case e.Field == "":
		return e.Entry
	}
	return e.Entry + ": " + e.Field
}

// Error renders file:line: entry: field: problem.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if p := e.Path(); p != "" {
		b.WriteString(p + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap lets errors.Is(err, ErrInvalid) hold for every Error.
func (e *Error) Unwrap() error { return ErrInvalid }

// ErrorList is every problem found in a catalogue, at most MaxErrors and
// a last entry counting the rest.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// problems collects a catalogue's errors, keeping the first MaxErrors and
// counting the rest (a file of 1000 services can hold far more).
type problems struct {
	list ErrorList
	more int
}

func (p *problems) add(e *Error) {
	if len(p.list) >= MaxErrors {
		p.more++
		return
	}
	p.list = append(p.list, e)
}

// addf formats only what is kept: counting the rest costs no allocation.
func (p *problems) addf(file string, line int, entry, field, format string, args ...any) {
	if len(p.list) >= MaxErrors {
		p.more++
		return
	}
	p.list = append(p.list, &Error{File: file, Line: line, Entry: entry, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) count() int { return len(p.list) + p.more }

// err returns nil when there is no problem, else the list with the count
// of those left out.
func (p *problems) err(file string) error {
	if len(p.list) == 0 {
		return nil
	}
	// In line order: the decoder's problems come first, found in a pass
	// of their own. Stable, so a line keeps its fields in order.
	slices.SortStableFunc(p.list, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	if p.more == 0 {
		return p.list
	}
	return append(p.list, &Error{File: file, Msg: fmt.Sprintf("… and %d more errors (only the first %d are listed)", p.more, MaxErrors)})
}
