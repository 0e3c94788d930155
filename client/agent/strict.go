package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"
)

// errDuplicateKey: an object names one key twice. encoding/json keeps the
// last, and matches field names ignoring case, so {"allowed":false,…,
// "Allowed":true} would be read as an allow that another reader (the audit
// trail, a proxy, another SDK) reads as a denial.
var errDuplicateKey = errors.New("a key appears twice in one object")

// unmarshalStrict is json.Unmarshal refusing an object that holds a key
// twice, spelled alike or alike but for case (as encoding/json folds it).
func unmarshalStrict(data []byte, v any) error {
	if err := noDuplicateKeys(data); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func noDuplicateKeys(data []byte) error {
	type frame struct {
		keys      map[string]struct{} // nil for an array
		expectKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []*frame
	// value marks a value read in the innermost object: a key comes next.
	value := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decoding: %w", err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				value()
				f := &frame{}
				if t == '{' {
					f.keys, f.expectKey = map[string]struct{}{}, true
				}
				stack = append(stack, f)
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].expectKey {
				k := foldKey(t)
				if _, dup := stack[n-1].keys[k]; dup {
					return fmt.Errorf("%w: %q", errDuplicateKey, truncate(t, 64))
				}
				stack[n-1].keys[k] = struct{}{}
				stack[n-1].expectKey = false
				continue
			}
			value()
		default:
			value()
		}
	}
}

// foldKey folds a key as encoding/json matches field names, so two keys
// it would read as one field fold alike.
func foldKey(k string) string {
	out := make([]byte, 0, len(k))
	for _, r := range k {
		out = utf8.AppendRune(out, unicode.ToUpper(unicode.ToLower(r)))
	}
	return string(out)
}
