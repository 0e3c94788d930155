package agentproto

// RecordedAction is the action the parse gives a call of protocol p to
// service (Call.Action), for a reader of a recorded call (one a wasm
// filter ships) to hold it to its record's action; "" when no parse gives
// such a call. httpMethod is the request's: a POST carries a JSON-RPC
// request, whose method and name (none for a method that names nothing,
// one for a method that needs it) give the action; an MCP GET (the
// server's stream) or DELETE (the end of a session), and an A2A GET (the
// Agent Card), are connect:S, with the HTTP method as the call's method
// and no name.
func RecordedAction(p Protocol, service, httpMethod, method, name string) string {
	if httpMethod != "POST" {
		get := httpMethod == "GET" || p == MCP && httpMethod == "DELETE"
		if !get || method != httpMethod || name != "" || (p != MCP && p != A2A) {
			return ""
		}
		return "connect:" + service
	}
	switch p {
	case MCP:
		if _, named := mcpNamed(method); named != (name != "") {
			return ""
		}
		return mcpAction(service, method, name)
	case A2A:
		if name != "" {
			return ""
		}
		return a2aAction(service, method)
	}
	return ""
}

// CarriesArguments reports whether a call of protocol p with method
// carries arguments, so that its record has their digest (unless it was
// decided from the headers alone).
func CarriesArguments(p Protocol, method string) bool {
	return p == MCP && (method == "tools/call" || method == "prompts/get")
}
