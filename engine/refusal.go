package engine

import (
	"errors"
	"fmt"

	"github.com/meshguard/meshguard/agentproto"
)

// What the engine refuses in a request before it reaches policy. Each
// refusal matches one of these (or one of edge.CheckText's ErrText sentinels);
// decide answers it with refuse. Nothing outside the engine branches on
// them: adapters read the Decision.
var (
	errContextTooLarge   = errors.New("context over its limit")
	errMalformedEscape   = errors.New("malformed percent-encoding")
	errPathNotNormalized = errors.New("path not normalised")
	// errPathAmbiguous: a ';' or an escaped '?', '#' or control character,
	// which servers read as the end of the path (or the name).
	errPathAmbiguous    = errors.New("path read differently by servers")
	errMethodCase       = errors.New("method not in upper case")
	errMethodOverride   = errors.New("method overridden")
	errActionUnresolved = errors.New("action unresolved")
	errActionMalformed  = errors.New("action malformed")
	// errValueAmbiguous: a value a policy reads that the request holds
	// twice, or that servers split differently.
	errValueAmbiguous = errors.New("request value ambiguous")
)

// refusal is input the caller controls that the engine refuses. Its
// message is the deny message the caller reads, word for word; kind is the
// sentinel it matches.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

// refused returns a refusal of the given kind.
func refused(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// refuse denies the request for err, the one place a refusal becomes a
// status and a reason: an action no route or verb resolves is a 403 (the
// request is well formed; MeshGuard cannot say what it does), anything
// else the caller sent is a 400 (an MCP header that disagrees with the
// body with its own reason). An error that is no refusal is
// MeshGuard's own failure, never a denial the caller could fix.
func (d *Decision) refuse(err error) error {
	var r *refusal
	switch {
	case !errors.As(err, &r):
		return internal("checking the request", err)
	case errors.Is(r, errActionUnresolved):
		return d.deny(403, ReasonActionUnresolved, "%s", r.msg)
	case errors.Is(r, agentproto.ErrHeaderMismatch):
		return d.deny(400, ReasonMCPHeaderMismatch, "%s", r.msg)
	}
	return d.deny(400, ReasonBadRequest, "%s", r.msg)
}
