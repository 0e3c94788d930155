package agentproto

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
)

// MaxListResponse bounds the answer to a list request that FilterList
// reads; a larger one is refused, never passed on unfiltered.
const MaxListResponse = 8 << 20

// ErrListResponse: FilterList could not read the answer to a list request
// (not JSON-RPC, too large, another media type, not the answer to this
// request). Callers fail closed: the answer is not passed on.
var ErrListResponse = errors.New("unreadable answer to a list request")

// FilterList rewrites the answer to the list request call (Call.Lists) so
// that it holds only the items whose action (Call.ListedAction) keep
// accepts: result.tools[] by name, result.prompts[] by name,
// result.resources[] by uri. Every other byte of the answer is kept as
// sent: the other members of the result (nextCursor, …), the items kept,
// and, in an event stream, the other events.
//
// contentType is the answer's: application/json holds one JSON-RPC
// response, which must be the answer to call (the same id), or an error
// answer, kept as it is. text/event-stream (Streamable HTTP answers a POST
// with one) is rewritten event by event: the data of an event that is a
// JSON-RPC response to call's id is filtered, the server's notifications
// and requests are kept, and an answer with any other id is refused (a
// POST's stream answers its one request; a lenient client could match
// "7" or 7.0 to 7).
// Anything else is refused with ErrListResponse, as is an answer over
// MaxListResponse: a list that cannot be read is not passed on unfiltered.
// An item with no valid name is dropped: no call could name it either.
func FilterList(call Call, body []byte, contentType string, keep func(action string) bool) ([]byte, error) {
	if !call.Lists() {
		return nil, fmt.Errorf("%w: %s is not a list request", ErrListResponse, call.Method)
	}
	if len(body) > MaxListResponse {
		return nil, fmt.Errorf("%w: %d bytes, over the bound of %d", ErrListResponse, len(body), MaxListResponse)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("%w: Content-Type %q: %w", ErrListResponse, contentType, err)
	}
	switch mt {
	case "application/json":
		out, err := filterResponse(call, body, keep)
		if errors.Is(err, errNotResponse) {
			return nil, fmt.Errorf("%w: a JSON-RPC request, not the answer to one", ErrListResponse)
		}
		return out, err
	case "text/event-stream":
		return filterEvents(call, body, keep)
	}
	return nil, fmt.Errorf("%w: Content-Type %q: expected application/json or text/event-stream", ErrListResponse, mt)
}

// errNotResponse: a JSON-RPC request or notification (of the server's,
// in an event stream), not a response.
var errNotResponse = errors.New("not a JSON-RPC response")

// listMember is the result's member holding the list, and the key of an
// item that names it.
func listMember(method string) (list, key string) {
	switch method {
	case "tools/list":
		return "tools", "name"
	case "prompts/list":
		return "prompts", "name"
	}
	return "resources", "uri"
}

// filterResponse filters one JSON-RPC response. The strict reader checks
// it whole first (no duplicate keys, valid UTF-8, bounded depth), so that
// the walk below, which finds the list's bytes, and every client read the
// same members.
func filterResponse(call Call, body []byte, keep func(string) bool) ([]byte, error) {
	v, err := decodeStrict(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrListResponse, err)
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON-RPC response object", ErrListResponse)
	}
	_, hasResult := top["result"]
	_, hasError := top["error"]
	if _, req := top["method"]; req && !hasResult && !hasError {
		return nil, errNotResponse // a request or notification of the server's
	}
	// A POST carries one request (batches are refused), so every answer
	// in its answer is to that request: one with another id — "7" or 7.0
	// for 7, which a lenient client may match — is refused, not passed on.
	if id, err := responseID(top["id"]); err != nil || id != call.ID {
		return nil, fmt.Errorf("%w: an answer to another request than %s (or also a request)", ErrListResponse, call.ID)
	}
	if _, req := top["method"]; req {
		return nil, fmt.Errorf("%w: a message that is both a request and an answer", ErrListResponse)
	}
	if _, isErr := top["error"]; isErr {
		if _, both := top["result"]; both {
			return nil, fmt.Errorf("%w: a response with both a result and an error", ErrListResponse)
		}
		return body, nil // an error carries no list
	}
	result, ok := top["result"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: no result object", ErrListResponse)
	}
	list, key := listMember(call.Method)
	scoped := false
	for k := range result {
		// encoding/json (a Go client) reads "Tools" as tools; the strict
		// reader refused two spellings, so this one would pass unread.
		if k != list && strings.EqualFold(k, list) {
			return nil, fmt.Errorf("%w: result.%s spelt %q", ErrListResponse, list, k)
		}
		scoped = scoped || strings.EqualFold(k, "cacheScope")
	}
	items, present := result[list]
	if !present {
		if scoped {
			return privateScope(body) // an empty list may be left out
		}
		return body, nil
	}
	decoded, ok := items.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: result.%s is not an array", ErrListResponse, list)
	}
	start, end, err := listSpan(body, list)
	if err != nil {
		return nil, err
	}
	out, err := rewriteList(call, body, start, end, decoded, key, keep)
	if err != nil || !scoped {
		return out, err
	}
	return privateScope(out)
}

// privateScope sets the result's cacheScope (MCP 2026-07-28), where the
// server sent one, to "private": a filtered list is this caller's, and
// "public" lets any client or intermediary cache it and serve it to
// another caller, who may see tools hidden from it. (Revisions before
// 2026-07-28 have no cacheScope, and a server of 2026-07-28 always sends
// it.) body was read whole by the strict reader, so result holds at most
// one member of that name in any case.
func privateScope(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	bad := func(err error) ([]byte, error) {
		return nil, fmt.Errorf("%w: reading result.cacheScope: %w", ErrListResponse, err)
	}
	if err := enterObject(dec, "result"); err != nil {
		return bad(err)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad(fmt.Errorf("expected an object: %v", err))
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return bad(err)
		}
		if k, _ := t.(string); strings.EqualFold(k, "cacheScope") {
			end := int(dec.InputOffset())
			start := end - len(raw)
			out := make([]byte, 0, len(body)+2)
			out = append(append(append(out, body[:start]...), `"private"`...), body[end:]...)
			return out, nil
		}
	}
	return body, nil
}

// responseID is a response's id as Call.ID spells a request's: a string
// re-encoded by encoding/json, a number as sent.
func responseID(v any) (string, error) {
	switch id := v.(type) {
	case string:
		b, err := json.Marshal(id)
		return string(b), err
	case json.Number:
		return id.String(), nil
	}
	return "", errNotResponse
}

// listSpan returns the bytes of result.<list> in body: from its '[' to
// just after its ']'.
func listSpan(body []byte, list string) (int, int, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	bad := func(err error) (int, int, error) {
		return 0, 0, fmt.Errorf("%w: reading result.%s: %w", ErrListResponse, list, err)
	}
	if err := enterObject(dec, "result"); err != nil {
		return bad(err)
	}
	if err := enterObject(dec, list); err != nil {
		return bad(err)
	}
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return bad(err)
	}
	end := int(dec.InputOffset())
	return end - len(raw), end, nil
}

// enterObject reads the '{' of an object and its members up to key's
// value (the strict reader has checked the key appears once).
func enterObject(dec *json.Decoder, key string) error {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("expected an object: %v", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if t == key {
			return nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return fmt.Errorf("no member %q", key)
}

// rewriteList copies body with the array at body[start:end] holding only
// the items keep accepts, each as sent. decoded holds the same items as
// the strict reader read them: their names are taken from there.
func rewriteList(call Call, body []byte, start, end int, decoded []any, key string, keep func(string) bool) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body[start:end]))
	if _, err := dec.Token(); err != nil { // '['
		return nil, fmt.Errorf("%w: %w", ErrListResponse, err)
	}
	out := make([]byte, 0, len(body))
	out = append(out, body[:start]...)
	out = append(out, '[')
	n := 0
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrListResponse, err)
		}
		if i >= len(decoded) {
			return nil, fmt.Errorf("%w: the two readings of result's list differ", ErrListResponse)
		}
		item, ok := decoded[i].(map[string]any)
		if !ok {
			continue // not an object: it names nothing callable
		}
		name, ok := item[key].(string)
		if !ok || checkToken(key, name) != nil {
			continue
		}
		if a := call.ListedAction(name); a == "" || !keep(a) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, raw...)
		n++
	}
	out = append(out, ']')
	return append(out, body[end:]...), nil
}

// filterEvents filters an event stream (the WHATWG server-sent events
// format): each event whose data is a JSON-RPC response to the call is
// filtered and its data written back on one line; every other line is
// kept as sent. A lone CR as a line end is refused rather than guessed.
func filterEvents(call Call, body []byte, keep func(string) bool) ([]byte, error) {
	out := make([]byte, 0, len(body))
	var (
		event   [][]byte // the lines of the event being read
		data    []byte
		hasData bool
	)
	flush := func() error {
		if hasData {
			filtered, err := filterEventData(call, data, keep)
			if err != nil {
				return err
			}
			if filtered != nil {
				wrote := false
				for _, l := range event {
					if field(l) != "data" {
						out = append(out, l...)
						continue
					}
					if !wrote {
						// Data lines are joined with LF: one line per
						// line of the filtered response says it exactly.
						ds := bytes.Split(filtered, []byte("\n"))
						for i, d := range ds {
							out = append(out, "data: "...)
							out = append(out, d...)
							if end := lineEnd(l); end != "" || i < len(ds)-1 {
								out = append(out, cmp.Or(end, "\n")...)
							}
						}
						wrote = true
					}
				}
				event, data, hasData = event[:0], data[:0], false
				return nil
			}
		}
		for _, l := range event {
			out = append(out, l...)
		}
		event, data, hasData = event[:0], data[:0], false
		return nil
	}
	rest := body
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		var line []byte
		if i < 0 {
			line, rest = rest, nil // the last line, unterminated
		} else {
			line, rest = rest[:i+1], rest[i+1:]
		}
		content := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if bytes.IndexByte(content, '\r') >= 0 {
			return nil, fmt.Errorf("%w: an event stream with a lone CR as a line end", ErrListResponse)
		}
		event = append(event, line)
		switch {
		case len(content) == 0: // the blank line ending an event
			if err := flush(); err != nil {
				return nil, err
			}
		case field(line) == "data":
			v := content[len("data"):]
			if len(v) > 0 && v[0] == ':' {
				v = v[1:]
			}
			v = bytes.TrimPrefix(v, []byte(" "))
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, v...), true
		}
	}
	// An event not ended by a blank line is dropped by clients; it is
	// filtered all the same, so no reader sees a list unfiltered.
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// filterEventData filters an event's data when it is the response to the
// call; nil when it is a notification or a request of the server's, kept
// as sent. Any other data is refused.
func filterEventData(call Call, data []byte, keep func(string) bool) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil // a priming event, or a keep-alive
	}
	out, err := filterResponse(call, data, keep)
	if errors.Is(err, errNotResponse) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// field is the field name of an event-stream line ("data", "event", …).
func field(line []byte) string {
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		return string(line[:i])
	}
	return string(bytes.TrimRight(line, "\r\n"))
}

func lineEnd(line []byte) string {
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		return "\r\n"
	case bytes.HasSuffix(line, []byte("\n")):
		return "\n"
	}
	return ""
}
