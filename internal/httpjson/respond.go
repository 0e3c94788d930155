// Package httpjson is strict JSON request decoding and JSON answers for
// MeshGuard's HTTP APIs: the admin API, the agents' decision API
// (checkapi) and the wasm filter's backend (filterapi) decode, refuse and
// answer through it alike, and share one Router, whose list of routes the
// credential tests hold each route to.
package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
)

// MaxBodyBytes bounds JSON request bodies (docs/api.md#limits).
const MaxBodyBytes = 1 << 20

// WriteJSON sends v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values MeshGuard builds are encoded; a failure is a bug.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal","message":"encoding the answer failed"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// WriteError sends {"error": code, "message": …}.
func WriteError(w http.ResponseWriter, status int, code, format string, args ...any) {
	WriteJSON(w, status, api.ErrorBody{Error: code, Message: fmt.Sprintf(format, args...)})
}

// BadRequest sends a 400.
func BadRequest(w http.ResponseWriter, format string, args ...any) {
	WriteError(w, http.StatusBadRequest, "bad_request", format, args...)
}

// ReadBody reads the request body, at most limit bytes. An oversized body
// is answered with 413 (after draining a bounded remainder, so the client
// reads the answer instead of a connection reset) and ok is false.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) (data []byte, ok bool) {
	tooLarge := func() {
		// Drain what a well-meaning client may still be sending; a
		// larger remainder is cut off with the connection.
		_, _ = io.CopyN(io.Discard, r.Body, 4*limit)
		w.Header().Set("Connection", "close")
		WriteError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "the body is larger than the limit of %d bytes", limit)
	}
	if r.ContentLength > limit {
		tooLarge()
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		BadRequest(w, "reading the body: %v", err)
		return nil, false
	}
	if int64(len(data)) > limit {
		tooLarge()
		return nil, false
	}
	return data, true
}

// MediaType returns the request's media type, lower case, "" if none.
func MediaType(r *http.Request) (string, bool) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", false
	}
	return strings.ToLower(mt), true
}

// DecodeJSON reads a JSON object into dst strictly: unknown fields, trailing
// data, a wrong Content-Type or an oversized body are refused, each with a
// message that names what is wrong. An empty body is allowed when
// emptyOK (dst keeps its zero value). It answers the request itself when it
// returns false.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any, limit int64, emptyOK bool) bool {
	if mt, ok := MediaType(r); !ok || (mt != "" && mt != "application/json") {
		WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "expected Content-Type: application/json")
		return false
	}
	data, ok := ReadBody(w, r, limit)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if emptyOK {
			return true
		}
		BadRequest(w, "empty body; expected a JSON object")
		return false
	}
	if msg := DecodeStrict(data, dst); msg != "" {
		BadRequest(w, "%s", msg)
		return false
	}
	return true
}

// DecodeStrict decodes one JSON object and returns a message for people if
// it cannot. Keys must match field names exactly, case included, and
// appear once in their object (checkKeys).
func DecodeStrict(data []byte, dst any) string {
	if msg := checkKeys(data, reflect.TypeOf(dst)); msg != "" {
		return msg
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, extra := dec.Token(); !errors.Is(extra, io.EOF) {
			return "unexpected data after the JSON object"
		}
		return ""
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fmt.Sprintf("expected a JSON object, got %s", typ.Value)
		}
		return fmt.Sprintf("%s: expected %s, got %s", field, jsonKind(typ.Type), typ.Value)
	case errors.As(err, new(*time.ParseError)):
		return "expected an RFC 3339 time such as 2026-01-05T10:00:00Z: " + err.Error()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: unexpected end of the body"
	}
	// "json: unknown field \"x\"" and the rest: the message names the field.
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind says in JSON's words what a field of type t holds, for "expected
// X" messages (never a Go type such as map[string]interface {}).
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[api.Duration]():
		return `a duration such as "24h" or a number of seconds`
	case t == reflect.TypeFor[time.Time]():
		return "an RFC 3339 time such as 2026-01-05T10:00:00Z"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number from 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if e := t.Elem(); e.Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	case reflect.Map:
		if e := t.Elem(); e.Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	case reflect.Struct:
		return "an object"
	}
	return "a JSON value"
}
