package identity

import "errors"

// ErrInvalidToken matches every rejection of a credential: errors.Is(err,
// ErrInvalidToken) is the 401 branch. Each rejection also matches its own
// sentinel below. An error from Verify that does not match ErrInvalidToken
// is an infrastructure failure (it matches ErrUnavailable): the caller must
// fail closed with a 5xx / gRPC error, not a 401.
var ErrInvalidToken = errors.New("invalid token")

// ErrUnavailable: the verifier could not decide because a dependency
// (AgentSource, RevokedTokens, the context) failed. It wraps the cause.
var ErrUnavailable = errors.New("identity: token check unavailable")

// rejection is a sentinel that also matches ErrInvalidToken.
type rejection struct{ msg string }

func (r *rejection) Error() string        { return r.msg }
func (r *rejection) Is(target error) bool { return target == ErrInvalidToken }

func newRejection(msg string) error { return &rejection{msg: msg} }

// Token rejections. Their messages and the detail wrapped around them never
// contain the token or any string taken from it (a token in a log is a
// credential in a log; attacker-chosen strings in a log are an injection
// vector), only what was expected and, for times, by how much it missed.
var (
	// ErrTokenMalformed: not a compact JWS, bad base64url or JSON, or a
	// header parameter MeshGuard does not accept.
	ErrTokenMalformed = newRejection("malformed token")
	// ErrTokenTooLarge: longer than MaxTokenSize; refused before parsing.
	ErrTokenTooLarge = newRejection("token too large")
	// ErrTokenAlg: alg missing, "none", unsupported, HS256 without a
	// configured secret, or not the alg of the key named by kid.
	ErrTokenAlg = newRejection("token algorithm not accepted")
	// ErrTokenKID: kid missing (asymmetric alg) or not a key that verifies.
	ErrTokenKID = newRejection("token key id unknown")
	// ErrTokenSignature: the signature does not verify.
	ErrTokenSignature = newRejection("token signature invalid")
	// ErrTokenIssuer: iss is not the configured issuer.
	ErrTokenIssuer = newRejection("token issuer not accepted")
	// ErrTokenAudience: aud does not contain the configured audience.
	ErrTokenAudience = newRejection("token audience not accepted")
	// ErrTokenExpired: exp has passed, beyond Leeway.
	ErrTokenExpired = newRejection("token expired")
	// ErrTokenNotYetValid: nbf or iat is in the future, beyond Leeway.
	ErrTokenNotYetValid = newRejection("token not yet valid")
	// ErrTokenJTI: jti missing or unusable.
	ErrTokenJTI = newRejection("token id (jti) missing or invalid")
	// ErrTokenRevoked: the token's jti has been revoked.
	ErrTokenRevoked = newRejection("token revoked")
	// ErrTokenClaims: a required claim is missing or has the wrong type or
	// value (sub not an agent id, unknown tier, oversized tags, lifetime
	// beyond the maximum, exp before iat, ...).
	ErrTokenClaims = newRejection("token claims invalid")
	// ErrAgentUnknown: sub names no agent.
	ErrAgentUnknown = newRejection("agent unknown")
	// ErrAgentRevoked: the agent is revoked; all its tokens are refused.
	ErrAgentRevoked = newRejection("agent revoked")
)
