package httpjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshguard/meshguard/api"
)

// BenchmarkDecodeCheckBody: what the key check adds to decoding a
// /v1/check body ("decoder" is encoding/json alone, as before it).
func BenchmarkDecodeCheckBody(b *testing.B) {
	body := []byte(`{"action":"write:email","resource":"mail/outbox","context":{"recipient":"team@example.com","priority":2,"tags":["a","b"]}}`)
	b.Run("decoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req api.CheckRequest
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keys", func(b *testing.B) {
		b.ReportAllocs()
		t := reflect.TypeFor[*api.CheckRequest]()
		for b.Loop() {
			if msg := checkKeys(body, t); msg != "" {
				b.Fatal(msg)
			}
		}
	})
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req api.CheckRequest
			if msg := DecodeStrict(body, &req); msg != "" {
				b.Fatal(msg)
			}
		}
	})
}

// FuzzCheckKeys: the key scan never panics, and on valid JSON it refuses
// exactly what it should. Decoding into a map, it lets no repeated key
// through (the decoder itself reports nothing then), and refuses nothing
// else but nesting deeper than maxKeyDepth (or, in input that is not
// UTF-8, a key that is not). Decoding into a struct (a /v1/check body), a
// key it lets through is exactly, case included, one of the struct's.
func FuzzCheckKeys(f *testing.F) {
	for _, seed := range []string{`{"action":"a","context":{"x":[1,{"y":null}]}}`, `{"a":1,"a":2}`, `[{"\u0061":1,"a":2}]`, `{"a":"\"","b":[]}`, `{`, `"x`, `{"a":{"a":{"a":1}}}`,
		`{"Action":"read:a"}`, `{"action":"read:a","action":"delete:a"}`, `{"resource":"r","context":{"k":1,"k":2}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg := checkKeys(data, reflect.TypeFor[map[string]any]())
		if !json.Valid(data) {
			return
		}
		ref := scanKeys(json.NewDecoder(bytes.NewReader(data)), 0)
		switch {
		case msg == "" && ref.repeated:
			t.Fatalf("a repeated key passed: %s", data)
		case msg != "" && !ref.repeated && ref.depth <= maxKeyDepth && utf8.Valid(data):
			t.Fatalf("refused %s, which repeats no key: %s", data, msg)
		}
		if checkKeys(data, reflect.TypeFor[*api.CheckRequest]()) != "" {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		if tok, _ := dec.Token(); tok != json.Delim('{') {
			return
		}
		for dec.More() {
			k, _ := dec.Token()
			if !slices.Contains(checkRequestKeys, k.(string)) {
				t.Fatalf("key %q of a /v1/check body passed: %s", k, data)
			}
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return
			}
		}
	})
}

// checkRequestKeys are api.CheckRequest's JSON keys, read from its tags.
var checkRequestKeys = func() []string {
	var keys []string
	for f := range reflect.TypeFor[api.CheckRequest]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}()

// keyScan is what scanKeys found: whether any object repeats a key, and
// how deep objects and lists nest.
type keyScan struct {
	repeated bool
	depth    int
}

// scanKeys reads the value dec holds, the slow way, with depth the
// nesting it is at.
func scanKeys(dec *json.Decoder, depth int) keyScan {
	var out keyScan
	tok, err := dec.Token()
	if err != nil {
		return out
	}
	merge := func(in keyScan) {
		out.repeated = out.repeated || in.repeated
		out.depth = max(out.depth, in.depth)
	}
	switch tok {
	case json.Delim('['):
		out.depth = depth + 1
		for dec.More() {
			merge(scanKeys(dec, depth+1))
		}
		_, _ = dec.Token()
	case json.Delim('{'):
		out.depth = depth + 1
		seen := map[string]bool{}
		for dec.More() {
			k, _ := dec.Token()
			out.repeated = out.repeated || seen[k.(string)]
			seen[k.(string)] = true
			merge(scanKeys(dec, depth+1))
		}
		_, _ = dec.Token()
	}
	return out
}
