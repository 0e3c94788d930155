package agentproto

import "encoding/json"

// CodeUnfilteredList is the JSON-RPC error code of a list answer an
// enforcement point refuses to pass on because it could not filter it (the
// gateway's and the wasm filter's 502): JSON-RPC's implementation-defined
// range, not -32002 (MCP's "resource not found").
const CodeUnfilteredList = -32052

// ErrorResponse is a JSON-RPC 2.0 error response to the request whose id
// is id (JSON text, as Call.ID holds it; "" answers null, as JSON-RPC asks
// when the id is not known), with data as the error's data when not nil.
// The one shape of every JSON-RPC answer MeshGuard writes itself.
func ErrorResponse(id string, code int, message string, data any) []byte {
	type rpcErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}
	raw := json.RawMessage("null")
	if id != "" {
		raw = json.RawMessage(id) // checked by the parser: valid JSON
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcErr          `json:"error"`
	}{"2.0", raw, rpcErr{code, message, data}}) // plain fields and a valid id: cannot fail
	return b
}
