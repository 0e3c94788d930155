package extauthz

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
)

// HeaderPartialBody is the header Envoy adds to the check request whenever
// it sends the body (with_request_body): "true" when what it sent is a
// prefix of the body, "false" when it is the whole. Envoy drops a header of
// this name the caller sent.
const HeaderPartialBody = "x-envoy-auth-partial-body"

// What makes the body Envoy sent unusable for a decision. The engine
// refuses a request to a route reading the body with any of them
// (engine.Request.BodyError: a recorded 400); other routes ignore the body.
var (
	ErrBodyTooLarge = errors.New("request body larger than the bound")
	ErrPartialBody  = errors.New("the proxy sent a prefix of the request body")
	ErrBodyLength   = errors.New("request body length disagrees with Content-Length")
	ErrTwoBodies    = errors.New("the check request carries the body twice")
)

// setBody hands body to r when it is the whole body the upstream
// receives, and otherwise the reason it is not (r.BodyError), so that a
// route that decides on the body never decides on a prefix. r.Headers
// must be set: the proxy's partial-body mark and the caller's
// Content-Length are read from them. A request the proxy sent no body for
// (none, and no partial-body mark) keeps r.Body nil: the body is not
// available, which is not the same as an empty one.
func setBody[B string | []byte](r *engine.Request, body B) {
	lookup := func(name string) (string, int) {
		if r.Headers == nil {
			return "", 0
		}
		return r.Headers.Lookup(name)
	}
	partial, marked := lookup(HeaderPartialBody)
	switch {
	case len(body) == 0 && marked == 0:
		return
	case len(body) > agentproto.MaxBody:
		r.BodyError = fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, agentproto.MaxBody)
		return
	case marked > 1 || marked == 1 && partial != "false":
		// Fail closed: only one explicit "false" says the body is whole.
		r.BodyError = fmt.Errorf("%w (%s: %q)", ErrPartialBody, HeaderPartialBody, partial)
		return
	}
	if v, n := lookup("content-length"); n > 0 {
		cl, err := strconv.ParseUint(v, 10, 63)
		if n > 1 || err != nil || cl != uint64(len(body)) {
			r.BodyError = fmt.Errorf("%w: %d bytes received, Content-Length %q", ErrBodyLength, len(body), v)
			return
		}
	}
	r.Body = []byte(body)
}

// readBody reads at most agentproto.MaxBody+1 bytes of b: enough to know
// a body is over the bound without holding more of it.
func readBody(b io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(b, agentproto.MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %w", err)
	}
	return body, nil
}
