package agentproto

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// The MCP Streamable HTTP headers read here (2026-07-28 adds Mcp-Method
// and Mcp-Name, SEP-2243).
const (
	HeaderMCPMethod  = "mcp-method"
	HeaderMCPName    = "mcp-name"
	HeaderMCPSession = "mcp-session-id"
	// HeaderMCPVersion is the revision a client speaks, on every request
	// after initialization.
	HeaderMCPVersion = "mcp-protocol-version"
	// HeaderRevision is the first revision whose servers check Mcp-Method
	// and Mcp-Name against the body (SEP-2243).
	HeaderRevision = "2026-07-28"
)

// mcpNamed is where a method's Mcp-Name comes from in the body (SEP-2243):
// params.name for tools and prompts, params.uri for resources; named is
// false for a method that names nothing.
func mcpNamed(method string) (key string, named bool) {
	switch method {
	case "tools/call", "prompts/get":
		return "name", true
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return "uri", true
	}
	return "", false
}

// mcpAction maps a method and its name to the action on service s
// (docs/mcp.md).
func mcpAction(s, method, name string) string {
	switch method {
	case "tools/call":
		return "call:" + s + "/" + name
	case "resources/read":
		return "read:" + s + "/" + name
	case "prompts/get":
		return "get:" + s + "/prompts/" + name
	case "tools/list":
		return "list:" + s + "/tools"
	case "resources/list", "resources/templates/list":
		return "list:" + s + "/resources"
	case "prompts/list":
		return "list:" + s + "/prompts"
	case "initialize", "ping":
		return "connect:" + s
	}
	if strings.HasPrefix(method, "notifications/") {
		return "connect:" + s
	}
	return "mcp:" + s + "/" + method
}

// ParseMCP reads an MCP request body sent to service: one JSON-RPC 2.0
// request, strictly (see the package doc), checked against the
// 2026-07-28 Mcp-Method and Mcp-Name headers where present. h may be nil.
func ParseMCP(service string, body []byte, h Headers) (Call, error) {
	if err := checkToken("service name", service); err != nil {
		return Call{}, err
	}
	var s scanner
	r, err := parseRequest(&s, body)
	if err != nil {
		return Call{}, err
	}
	params := s.params.all()
	c := Call{Protocol: MCP, Service: service, Method: r.method, ID: r.id, Notification: r.notification}
	if key, named := mcpNamed(r.method); named {
		v, present, err := stringParam(params, key)
		if err != nil {
			return Call{}, err
		}
		if !present {
			return Call{}, fmt.Errorf("%w: %s needs params.%s", ErrBadRequest, r.method, key)
		}
		if err := checkName(key, r.method, v); err != nil {
			return Call{}, err
		}
		c.Name = v
	}
	if CarriesArguments(MCP, r.method) {
		if a, present := lookup(params, "arguments"); present {
			if a[0] != '{' {
				return Call{}, fmt.Errorf("%w: params.arguments must be an object", ErrBadRequest)
			}
			c.RawArguments, c.args = a, r.args
		}
		c.HasArguments = true
	}
	c.Action = mcpAction(service, r.method, c.Name)
	if h != nil {
		if err := checkMCPHeaders(h, r.method, c.Name); err != nil {
			return Call{}, err
		}
		if c.SessionID, err = SessionID(h); err != nil {
			return Call{}, err
		}
	}
	return c, nil
}

// checkName checks what a method names: a token, and a resource URI in
// normal form (checkURI).
func checkName(key, method, v string) error {
	if err := checkToken(mcpWhat(key, method), v); err != nil {
		return err
	}
	if key == "uri" {
		return checkURI(v)
	}
	return nil
}

func mcpWhat(key, method string) string {
	switch {
	case key == "uri":
		return "resource URI (params.uri)"
	case method == "prompts/get":
		return "prompt name (params.name)"
	}
	return "tool name (params.name)"
}

// checkMCPHeaders: a present Mcp-Method must be the body's method and a
// present Mcp-Name the body's name or URI (SEP-2243's server rule; its
// servers answer a mismatch with 400). Absent headers are older revisions.
func checkMCPHeaders(h Headers, method, name string) error {
	if v, n := h.Lookup(HeaderMCPMethod); n > 1 {
		return fmt.Errorf("%w: Mcp-Method sent %d times", ErrHeaderMismatch, n)
	} else if n == 1 && strings.Trim(v, " \t") != method {
		return fmt.Errorf("%w: Mcp-Method is %q, the body's method is %q", ErrHeaderMismatch, v, method)
	}
	v, n := h.Lookup(HeaderMCPName)
	if n == 0 {
		return nil
	}
	if n > 1 {
		return fmt.Errorf("%w: Mcp-Name sent %d times", ErrHeaderMismatch, n)
	}
	if _, named := mcpNamed(method); !named {
		return fmt.Errorf("%w: Mcp-Name sent with %s, which names nothing", ErrHeaderMismatch, method)
	}
	got, err := decodeHeaderValue(v)
	if err != nil {
		return fmt.Errorf("%w: Mcp-Name: %w", ErrHeaderMismatch, err)
	}
	if got != name {
		return fmt.Errorf("%w: Mcp-Name is %q, the body names %q", ErrHeaderMismatch, got, name)
	}
	return nil
}

// decodeHeaderValue undoes SEP-2243's value encoding: a value that cannot
// travel as plain ASCII is sent as =?base64?<standard base64 of UTF-8>?=.
// Surrounding spaces and tabs are not part of a field value (RFC 9110).
func decodeHeaderValue(v string) (string, error) {
	v = strings.Trim(v, " \t")
	inner, ok := strings.CutPrefix(v, "=?base64?")
	if !ok {
		return v, nil
	}
	inner, ok = strings.CutSuffix(inner, "?=")
	if !ok {
		return "", fmt.Errorf("a =?base64? value without its closing ?=")
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return "", fmt.Errorf("invalid base64 in a =?base64? value: %w", err)
	}
	return string(b), nil
}

// SessionID reads Mcp-Session-Id: once at most, visible ASCII only (the
// transport's rule for it); "" without one. h may be nil.
func SessionID(h Headers) (string, error) {
	if h == nil {
		return "", nil
	}
	v, n := h.Lookup(HeaderMCPSession)
	switch {
	case n == 0:
		return "", nil
	case n > 1:
		return "", fmt.Errorf("%w: Mcp-Session-Id sent %d times", ErrBadRequest, n)
	case v == "" || len(v) > MaxName:
		return "", fmt.Errorf("%w: Mcp-Session-Id is empty or longer than %d bytes", ErrBadRequest, MaxName)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return "", fmt.Errorf("%w: Mcp-Session-Id holds a byte outside visible ASCII", ErrBadRequest)
		}
	}
	return v, nil
}

// HeaderOnly decides an MCP request from its 2026-07-28 headers alone, for
// an enforcement point that has no body: Mcp-Method, and Mcp-Name for the
// methods that name something. The Call has HeaderOnly set and no
// arguments, so a rule with an arguments.* condition must not match it
// (docs/mcp.md, "Header-only decisions"); the body, when it reaches the
// upstream, must still agree with the headers — which is the upstream's
// own SEP-2243 check.
func HeaderOnly(service string, h Headers) (Call, error) {
	if err := checkToken("service name", service); err != nil {
		return Call{}, err
	}
	if h == nil {
		return Call{}, fmt.Errorf("%w: %w", ErrBadRequest, ErrNoHeaders)
	}
	method, n := h.Lookup(HeaderMCPMethod)
	switch {
	case n == 0:
		return Call{}, fmt.Errorf("%w: %w", ErrBadRequest, ErrNoHeaders)
	case n > 1:
		return Call{}, fmt.Errorf("%w: Mcp-Method sent %d times", ErrBadRequest, n)
	}
	method = strings.Trim(method, " \t")
	if err := checkToken("Mcp-Method", method); err != nil {
		return Call{}, err
	}
	c := Call{Protocol: MCP, Service: service, Method: method, HeaderOnly: true}
	if key, named := mcpNamed(method); named {
		v, n := h.Lookup(HeaderMCPName)
		if n != 1 {
			return Call{}, fmt.Errorf("%w: %s needs exactly one Mcp-Name header (found %d)", ErrBadRequest, method, n)
		}
		name, err := decodeHeaderValue(v)
		if err != nil {
			return Call{}, fmt.Errorf("%w: Mcp-Name: %w", ErrBadRequest, err)
		}
		if err := checkName(key, method, name); err != nil {
			return Call{}, err
		}
		c.Name = name
	} else if _, n := h.Lookup(HeaderMCPName); n > 0 {
		return Call{}, fmt.Errorf("%w: Mcp-Name sent with %s, which names nothing", ErrHeaderMismatch, method)
	}
	c.Action = mcpAction(service, method, c.Name)
	var err error
	if c.SessionID, err = SessionID(h); err != nil {
		return Call{}, err
	}
	// Only a server that checks the headers against the body makes them
	// safe to decide on: one of 2026-07-28 or later does (SEP-2243), and
	// one of an older revision refuses a request naming a revision it
	// does not speak (a 400, by the transport's rules). Without this, a
	// body saying tools/call behind headers saying tools/list would reach
	// an older server allowed as a list.
	if v, n := h.Lookup(HeaderMCPVersion); n != 1 || !revisionAtLeast(v, HeaderRevision) {
		return Call{}, fmt.Errorf("%w: a decision on the Mcp-Method header alone needs one MCP-Protocol-Version header of %s or later (found %d: %q)", ErrBadRequest, HeaderRevision, n, v)
	}
	return c, nil
}

// revisionAtLeast reports whether v is an MCP revision (YYYY-MM-DD) no
// earlier than min; such dates compare as text.
func revisionAtLeast(v, min string) bool {
	if len(v) != len(min) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if digit := v[i] >= '0' && v[i] <= '9'; digit != (i != 4 && i != 7) || !digit && v[i] != '-' {
			return false
		}
	}
	return v >= min
}
