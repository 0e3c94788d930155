package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// marshalDecoded is the definition appendCanonicalJSON implements:
// encoding/json's Marshal of what Decode (UseNumber) reads.
func marshalDecoded(raw []byte) ([]byte, error) {
	args, err := decodeArguments(raw)
	if err != nil {
		return nil, err
	}
	return json.Marshal(args)
}

var canonSeeds = []string{
	`{}`, ` { } `, `{"b":1,"a":2}`, `{"a":{"z":[],"y":{}},"b":[1,"x",true,false,null]}`,
	`{"n":12345678901234567890,"f":-0.5e+10,"z":0,"e":1E5,"m":-0}`,
	`{"html":"<a href='x'>&</a>","ctl":"\u0000\u001f\b\f\n\r\t\"\\\/","sep":"\u2028\u2029 raw: ` + "\u2028" + `"}`,
	`{"uni":"研究 récupérateur 🚀","esc":"\u00e9\ud83d\ude80","lone":"\ud800x"}`,
	"{\"bad\":\"\xff\xfe\",\"ok\":1}", `{"k\u0041":1,"kB":2}`, `{"é":1,"e":2,"E":3,"":4}`,
	`{"del":"` + "\x7f" + `"}`, "{\n\t\"a\" :\r\n[ 1 , 2 ]\n}",
	// Refused by both.
	`[1]`, `null`, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":tru}`,
	`{"a":"x` + "\n" + `"}`, `{"a":1} {}`, `{"a":[1,]}`, `{"a":"\x"}`, `{`, `{"a":"`,
}

// TestCanonicalJSONIsMarshalOfDecoded: the canonical encoding the digest
// hashes is byte for byte encoding/json's, and what one refuses the other
// refuses (repeated keys aside: the parser refuses them before, and the
// canonical encoding refuses them too rather than keep one).
func TestCanonicalJSONIsMarshalOfDecoded(t *testing.T) {
	for _, s := range canonSeeds {
		checkCanonical(t, []byte(s))
	}
	if _, err := appendCanonicalJSON(nil, []byte(`{"a":1,"a":2}`)); !errors.Is(err, ErrBadArguments) {
		t.Errorf("a repeated key: %v, want ErrBadArguments", err)
	}
	if _, err := appendCanonicalJSON(nil, []byte(`{"a":{"b":1,"b":1}}`)); !errors.Is(err, ErrBadArguments) {
		t.Errorf("a repeated nested key: %v, want ErrBadArguments", err)
	}
}

func checkCanonical(t *testing.T, raw []byte) {
	t.Helper()
	want, werr := marshalDecoded(raw)
	got, gerr := appendCanonicalJSON(nil, raw)
	switch {
	case werr != nil && gerr == nil:
		t.Errorf("%q: encoding/json refuses it (%v), the canonical encoding gives %s", raw, werr, got)
	case werr == nil && gerr != nil:
		if !bytes.Contains(raw, []byte(`"`)) || !errors.Is(gerr, ErrBadArguments) {
			t.Errorf("%q: refused (%v), encoding/json gives %s", raw, gerr, want)
		} else if !hasRepeatedKey(raw) {
			t.Errorf("%q: refused (%v), encoding/json gives %s", raw, gerr, want)
		}
	case werr == nil && !bytes.Equal(got, want):
		t.Errorf("%q:\n got %s\nwant %s", raw, got, want)
	}
}

// hasRepeatedKey reports whether some object of raw repeats a key, as
// encoding/json's decoding reads keys.
func hasRepeatedKey(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			rep := false
			for dec.More() {
				k, _ := dec.Token()
				ks, _ := k.(string)
				rep = rep || seen[ks]
				seen[ks] = true
				rep = walk() || rep
			}
			_, _ = dec.Token()
			return rep
		case json.Delim('['):
			rep := false
			for dec.More() {
				rep = walk() || rep
			}
			_, _ = dec.Token()
			return rep
		}
		return false
	}
	return walk()
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range canonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkCanonical(t, raw) })
}
