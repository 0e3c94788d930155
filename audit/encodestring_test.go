package audit

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// stringPieces are what a record's strings are made of, for
// TestAppendStringOfMixedPieces: plain ASCII, what is escaped, valid
// runes of two to four bytes (U+2028 and U+2029 among them, which
// encoding/json would escape and the canonical form writes as they are),
// and invalid UTF-8 (a lone continuation byte, truncated sequences, a
// surrogate, an overlong form, 0xff).
var stringPieces = []string{
	"a", "Z", "0", "/", "<", ">", "&", "\x7f", " ", "\"", "\\", "\n", "\r", "\t", "\x00", "\x01", "\x1f",
	"é", "€", "😀", "\u2028", "\u2029", "\ufffd", "\uffff",
	"\x80", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xc0\xaf", "\xff", "\xfe",
}

// TestAppendStringOfMixedPieces: strings of up to 40 bytes made of those
// pieces, so that runes and invalid sequences fall across the 8-byte words
// and in the overlapping last word, are written as the byte-wise encoder
// writes them (what every stored record was hashed with), and a record
// holding one encodes the same after encoding/json has read its encoding
// back (as verification reads a stored record): two different encodings
// of one record would fail its verification.
func TestAppendStringOfMixedPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 3))
	for range 30_000 {
		var sb strings.Builder
		for n := rng.IntN(41); sb.Len() < n; {
			if rng.IntN(3) == 0 {
				sb.WriteString(stringPieces[rng.IntN(len(stringPieces))])
			} else {
				sb.WriteString(stringPieces[rng.IntN(4)]) // mostly plain, so words are skipped whole
			}
		}
		s := sb.String()
		got, want := appendString(nil, s), appendStringBytewise(nil, s)
		if string(got) != string(want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
		r := Record{ID: "aud_x", Path: s, Context: map[string]any{s: s}}
		enc, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		var back Record
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("%q: the canonical encoding %s is not JSON: %v", s, enc, err)
		}
		again, err := back.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(enc) {
			t.Fatalf("%q: encoded %s, read back and encoded again %s", s, enc, again)
		}
	}
}
