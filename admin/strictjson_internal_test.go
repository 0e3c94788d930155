package admin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/client"
)

// BenchmarkDecodeCheckBody: what the key check adds to decoding a
// /v1/check body ("decoder" is encoding/json alone, as before it).
func BenchmarkDecodeCheckBody(b *testing.B) {
	body := []byte(`{"action":"write:email","resource":"mail/outbox","context":{"recipient":"team@example.com","priority":2,"tags":["a","b"]}}`)
	b.Run("decoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req client.CheckRequest
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keys", func(b *testing.B) {
		b.ReportAllocs()
		t := reflect.TypeFor[*client.CheckRequest]()
		for b.Loop() {
			if msg := checkKeys(body, t); msg != "" {
				b.Fatal(msg)
			}
		}
	})
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req client.CheckRequest
			if msg := decodeStrict(body, &req); msg != "" {
				b.Fatal(msg)
			}
		}
	})
}

// FuzzCheckKeys: the key scan never panics, and on valid JSON it never
// lets a repeated key through (the decoder itself reports nothing then).
func FuzzCheckKeys(f *testing.F) {
	for _, seed := range []string{`{"action":"a","context":{"x":[1,{"y":null}]}}`, `{"a":1,"a":2}`, `[{"\u0061":1,"a":2}]`, `{"a":"\"","b":[]}`, `{`, `"x`, `{"a":{"a":{"a":1}}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg := checkKeys(data, reflect.TypeFor[map[string]any]())
		if msg != "" || !json.Valid(data) {
			return
		}
		if dup := repeatedKey(json.NewDecoder(bytes.NewReader(data))); dup {
			t.Fatalf("a repeated key passed: %s", data)
		}
	})
}

// repeatedKey reports whether any object of the value dec reads repeats
// a key, the slow way.
func repeatedKey(dec *json.Decoder) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			if repeatedKey(dec) {
				return true
			}
		}
		_, _ = dec.Token()
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, _ := dec.Token()
			if seen[k.(string)] {
				return true
			}
			seen[k.(string)] = true
			if repeatedKey(dec) {
				return true
			}
		}
		_, _ = dec.Token()
	}
	return false
}
