package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every load error, so callers can tell bad input
// (exit code 2, HTTP 400) from I/O failures with errors.Is.
var ErrInvalid = errors.New("invalid policy input")

// Error is one problem in one input file: where it is and what was expected.
type Error struct {
	File  string // file name as given to Parse
	Line  int    // 1-based; 0 when unknown
	Field string // path such as rules[2].conditions.time.timezone
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap lets errors.Is(err, ErrInvalid) hold for every Error.
func (e *Error) Unwrap() error { return ErrInvalid }

// ErrorList is every problem found in one load, in file and line order.
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

// err returns nil for an empty list, so `return list.err()` is safe.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
