package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
)

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values this package builds are encoded; a failure is a bug.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal","message":"encoding the answer failed"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeError sends {"error": code, "message": …}.
func writeError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeJSON(w, status, api.ErrorBody{Error: code, Message: fmt.Sprintf(format, args...)})
}

// badRequest sends a 400.
func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, "bad_request", format, args...)
}

// internalError logs err and sends a 500 that says nothing of it.
func (a *API) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error("admin: "+what, "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error while %s; see the server log", what)
}

// storeError answers a store error: the sentinels callers branch on become
// 4xx with the store's message (it names the field or the holder), anything
// else a logged 500.
func (a *API) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, identity.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "%s", err)
	case errors.Is(err, identity.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "%s", err)
	case errors.Is(err, identity.ErrInvalidAgent), errors.Is(err, store.ErrInvalidFilter), errors.Is(err, store.ErrInvalidPolicy):
		badRequest(w, "%s", err)
	default:
		a.internalError(w, r, what, err)
	}
}

// readBody reads the request body, at most limit bytes. An oversized body
// is answered with 413 (after draining a bounded remainder, so the client
// reads the answer instead of a connection reset) and ok is false.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (data []byte, ok bool) {
	tooLarge := func() {
		// Drain what a well-meaning client may still be sending; a
		// larger remainder is cut off with the connection.
		_, _ = io.CopyN(io.Discard, r.Body, 4*limit)
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "the body is larger than the limit of %d bytes", limit)
	}
	if r.ContentLength > limit {
		tooLarge()
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		badRequest(w, "reading the body: %v", err)
		return nil, false
	}
	if int64(len(data)) > limit {
		tooLarge()
		return nil, false
	}
	return data, true
}

// mediaType returns the request's media type, lower case, "" if none.
func mediaType(r *http.Request) (string, bool) {
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

// decodeJSON reads a JSON object into dst strictly: unknown fields, trailing
// data, a wrong Content-Type or an oversized body are refused, each with a
// message that names what is wrong. An empty body is allowed when
// emptyOK (dst keeps its zero value). It answers the request itself when it
// returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, limit int64, emptyOK bool) bool {
	if mt, ok := mediaType(r); !ok || (mt != "" && mt != "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "expected Content-Type: application/json")
		return false
	}
	data, ok := readBody(w, r, limit)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if emptyOK {
			return true
		}
		badRequest(w, "empty body; expected a JSON object")
		return false
	}
	if msg := decodeStrict(data, dst); msg != "" {
		badRequest(w, "%s", msg)
		return false
	}
	return true
}

// decodeStrict decodes one JSON object and returns a message for people if
// it cannot. Keys must match field names exactly, case included, and
// appear once in their object (checkKeys).
func decodeStrict(data []byte, dst any) string {
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

// locatedErrors converts a policy load error; an error that is not a list
// of located errors becomes one entry without a location.
func locatedErrors(err error) []api.LocatedError {
	var list policy.ErrorList
	if errors.As(err, &list) {
		out := make([]api.LocatedError, len(list))
		for i, e := range list {
			out[i] = api.LocatedError{File: e.File, Line: e.Line, Field: e.Field, Message: e.Msg}
		}
		return out
	}
	var one *policy.Error
	if errors.As(err, &one) {
		return []api.LocatedError{{File: one.File, Line: one.Line, Field: one.Field, Message: one.Msg}}
	}
	if err == nil {
		return nil
	}
	return []api.LocatedError{{Message: err.Error()}}
}

func joinComma(s []string) string { return strings.Join(s, ", ") }

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}
