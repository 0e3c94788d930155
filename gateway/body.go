package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
)

// Agent-protocol requests (docs/mcp.md, docs/a2a.md) are decided on their
// body, so the gateway reads it before it asks the engine, and forwards
// exactly the bytes decided on. Only requests the engine says it decides
// on the body (Checker.WantsBody: a POST to a route declaring a protocol)
// are read; every other body streams as before.

// errBodyUnread: the caller did not send the body it announced (it closed
// the connection, or sent a malformed chunk).
var errBodyUnread = errors.New("the request body could not be read in full")

// readBody reads the body of a request whose decision needs it, at most
// agentproto.MaxBody bytes plus one: a body over the bound reaches the
// engine one byte too long, so that it refuses and records it, and is never
// decided on a prefix. The buffer is sized for the announced length plus
// the one byte that finds the end, so a body as long as announced is read
// into it with no second buffer (bytes.Buffer.ReadFrom would grow it
// before reading the end).
func readBody(r *http.Request) ([]byte, error) {
	size := 512
	if r.ContentLength > 0 && r.ContentLength <= agentproto.MaxBody {
		size = int(r.ContentLength)
	}
	buf := make([]byte, 0, size+1)
	lr := io.LimitReader(r.Body, agentproto.MaxBody+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // longer than announced: grow
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, fmt.Errorf("%w: %w", errBodyUnread, err)
		}
	}
}

// setBody makes the allowed request carry exactly body upstream, with its
// Content-Length: what the engine decided on, however the caller framed it
// (chunked, or with Content-Length).
func setBody(r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
}

// errListUnfiltered: the upstream's answer to a list request could not be
// filtered (agentproto.ErrListResponse, or it could not be read), so it is
// not passed on.
var errListUnfiltered = errors.New("the upstream's answer to a list request could not be filtered")

// filterList replaces the body of the upstream's answer to an allowed list
// request (tools/list, …) with the items the caller may call
// (engine.Decision.Permits), in JSON or in an event stream. A 2xx answer
// that cannot be read is an error: ErrorHandler answers 502 and the list
// does not reach the caller. Other statuses carry no list and pass as sent.
func filterList(res *http.Response, d *engine.Decision) error {
	if res.StatusCode < 200 || res.StatusCode > 299 || res.StatusCode == http.StatusNoContent {
		return nil
	}
	if ce := res.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return fmt.Errorf("%w: Content-Encoding %q", errListUnfiltered, ce)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, agentproto.MaxListResponse+1))
	_ = res.Body.Close()
	if err != nil {
		return fmt.Errorf("%w: reading it: %w", errListUnfiltered, err)
	}
	out, err := agentproto.FilterList(*d.Call, body, res.Header.Get("Content-Type"), d.Permits)
	if err != nil {
		return fmt.Errorf("%w: %w", errListUnfiltered, err)
	}
	res.Body = io.NopCloser(bytes.NewReader(out))
	res.ContentLength = int64(len(out))
	res.Header.Set("Content-Length", strconv.Itoa(len(out)))
	res.TransferEncoding = nil
	return nil
}

// writeRPCError answers a JSON-RPC request with a JSON-RPC error of the
// gateway's own (an upstream failure), so that an MCP client reads an
// error rather than failing on a body it cannot parse.
func writeRPCError(w http.ResponseWriter, status int, call *agentproto.Call, code int, msg string) {
	writeJSONBytes(w, status, agentproto.ErrorResponse(call.ID, code, msg, nil))
}
