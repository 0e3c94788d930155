// Package audit is MeshGuard's audit trail (docs/audit.md): one Record per
// decision from every enforcement point, chained by hashes so that any edit
// or deletion of a stored record is detected.
//
// Each record's Hash is the SHA-256 of the previous record's hash and the
// record's canonical encoding (every field but the two hashes, as JSON with
// fields in declaration order and map keys sorted, times in UTC with
// nanoseconds). Verify walks records in order and reports the first one
// whose hash or link does not hold.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Record is one decision, with the fields docs/audit.md lists.
type Record struct {
	ID              string         `json:"id"`
	Timestamp       time.Time      `json:"timestamp"`
	TraceID         string         `json:"traceId"`
	SpanID          string         `json:"spanId"`
	DecisionID      string         `json:"decisionId"`
	AgentID         string         `json:"agentId"`
	AgentName       string         `json:"agentName"`
	TrustTier       string         `json:"trustTier"`
	Action          string         `json:"action"`
	Resource        string         `json:"resource"`
	Method          string         `json:"method"`
	Path            string         `json:"path"`
	Host            string         `json:"host"`
	Decision        string         `json:"decision"` // allow or deny
	Status          int            `json:"status"`
	Reason          string         `json:"reason"`
	Policy          string         `json:"policy"`
	Rule            string         `json:"rule"`
	Chain           []string       `json:"chain"` // agent ids, root → actor
	DelegationDepth int            `json:"delegationDepth"`
	Source          string         `json:"source"`
	SourceAddress   string         `json:"sourceAddress"`
	PolicyRevision  string         `json:"policyRevision"`
	LatencyUs       int64          `json:"latencyUs"`
	Context         map[string]any `json:"context,omitempty"` // what policies read: the request's header.*/query.* values, or /v1/check's context
	Mode            string         `json:"mode"`
	// Proxy is the proxy whose wasm filter made and shipped the record, or
	// deferred the decision to MeshGuard, as MeshGuard authenticated it
	// (proxyauth); empty for every other enforcement point.
	Proxy string `json:"proxy,omitempty"`
	// Call is the agent-protocol call decided on (an MCP tool call, an A2A
	// message), nil for any other request.
	Call *Call `json:"call,omitempty"`
	// Inputs are what the policies read that no other field holds, for
	// replay; nil for a request refused before policy (inputs.go).
	Inputs *Inputs `json:"inputs,omitempty"`
	// Approval is the human approval the decision asked for or used
	// (docs/governance.md), nil when its policy did not say approve.
	Approval *Approval `json:"approval,omitempty"`
	// Shadow is the shadow policies' answer when it differs from the one
	// enforced (docs/governance.md#shadow-policies), nil otherwise.
	Shadow   *Shadow `json:"shadow,omitempty"`
	PrevHash string  `json:"prevHash"`
	Hash     string  `json:"hash"`

	// Unreadable, set by a store, says why the stored row cannot be
	// trusted as this record (it is not JSON, or its indexed columns
	// disagree with it); a Verifier reports it as a break. Never stored.
	Unreadable string `json:"-"`

	canon  []byte        // the sealed canonical encoding; nil until sealed here
	queued time.Duration // when a Writer queued it (since the writer's epoch)
}

// Approval is a record's part in human approval: the approval's id and
// what this request came to (requested, pending, granted, denied,
// expired: approval.Outcome).
type Approval struct {
	ID      string `json:"id"`
	Outcome string `json:"outcome"`
}

// Shadow is what the policy set would have decided with its shadow
// policies enforcing, recorded when that differs from the decision made:
// the decision (allow, deny, approve), its reason code, the shadow policy
// the difference is put down to and its deciding rule ("" for its default
// or a delegation check).
type Shadow struct {
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	Policy   string `json:"policy"`
	Rule     string `json:"rule"`
}

// GenesisHash is the PrevHash of the first record of a chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Canonical is the encoding r's hash covers (see appendCanonical). A
// record sealed by Seal or a Writer keeps it, so a store can keep exactly
// those bytes instead of encoding the record again.
func (r *Record) Canonical() ([]byte, error) {
	if r.canon != nil {
		return r.canon, nil
	}
	return appendCanonical(make([]byte, 0, 768), r)
}

// Seal sets r.PrevHash to prev and computes r.Hash.
func (r *Record) Seal(prev string) error {
	if r.Call != nil {
		if err := r.Call.finish(false, nil); err != nil {
			return fmt.Errorf("audit: record %s: %w", r.ID, err)
		}
	}
	buf, err := encodeForSeal(r)
	if err != nil {
		return err
	}
	r.linkBuf(prev, buf)
	return nil
}

// hashRoom is the room encodeForSeal leaves ahead of a record's encoding
// for the hash it links to: the chain's SHA-256 then runs over one buffer
// (sha256.Sum256, nothing allocated) instead of a hasher fed twice.
const hashRoom = len(GenesisHash)

// encodeForSeal returns hashRoom bytes followed by r's canonical encoding.
func encodeForSeal(r *Record) ([]byte, error) {
	return appendCanonical(make([]byte, hashRoom, hashRoom+768), r)
}

// linkBuf is link for a buffer from encodeForSeal.
func (r *Record) linkBuf(prev string, buf []byte) {
	r.PrevHash = prev
	r.Hash = hashBuf(prev, buf)
	r.canon = buf[hashRoom:]
}

// hashBuf is chainHash(prev, buf[hashRoom:]), buf being encodeForSeal's.
// It writes prev into the room, so buf is the caller's alone.
func hashBuf(prev string, buf []byte) string {
	if len(prev) != hashRoom { // no chain's hash, but hashed as given
		return chainHash(prev, buf[hashRoom:])
	}
	copy(buf, prev)
	sum := sha256.Sum256(buf)
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:])
}

// link seals r after prev, body being r's canonical encoding. It is the
// only part of sealing that must happen in chain order (under a Writer's
// lock); encoding is done before.
func (r *Record) link(prev string, body []byte) {
	r.PrevHash = prev
	r.Hash = chainHash(prev, body)
	r.canon = body
}

func chainHash(prev string, body []byte) string {
	sum := sha256.New()
	sum.Write([]byte(prev))
	sum.Write(body)
	return hex.EncodeToString(sum.Sum(nil))
}

// ErrBroken is wrapped by Verify's report of a broken chain.
var ErrBroken = errors.New("audit chain broken")

// Break says where and how a chain is broken.
type Break struct {
	Chain string // the chain's name (VerifyChains; "" for a store's only chain)
	Index int    // position of the first broken record in the walk
	ID    string // its id
	Why   string
	kind  error // what else it is (ErrCheckpointNotReached), or nil
}

func (b *Break) Error() string {
	if b.kind != nil {
		return fmt.Sprintf("%v: chain %q: %s", b.kind, b.Chain, b.Why)
	}
	return fmt.Sprintf("%v at record %d (%s): %s", ErrBroken, b.Index, b.ID, b.Why)
}

func (b *Break) Unwrap() []error {
	if b.kind != nil {
		return []error{ErrBroken, b.kind}
	}
	return []error{ErrBroken}
}

// CheckpointNotReached reports whether the break is a checkpoint's record
// gone or replaced.
func (b *Break) CheckpointNotReached() bool { return b.kind == ErrCheckpointNotReached }

// Verifier checks records one at a time, in chain order, starting from a
// known previous hash (GenesisHash, or a retention anchor's hash).
type Verifier struct {
	prev  string
	index int
}

// NewVerifier starts a walk after prev.
func NewVerifier(prev string) *Verifier { return &Verifier{prev: prev} }

// Next checks one record: its link to the previous one and its own hash.
// The first failure is returned as a *Break; later records are not judged
// against a broken predecessor.
func (v *Verifier) Next(r *Record) error {
	defer func() { v.index++ }()
	if r.PrevHash != v.prev {
		return &Break{Index: v.index, ID: r.ID, Why: "prevHash does not match the previous record's hash (a record was deleted, inserted or reordered before it)"}
	}
	if r.Unreadable != "" {
		return &Break{Index: v.index, ID: r.ID, Why: r.Unreadable}
	}
	// Always re-encode: a cached encoding would vouch for the record as it
	// was sealed, not as it reads now.
	buf, err := encodeForSeal(r)
	if err != nil {
		return &Break{Index: v.index, ID: r.ID, Why: err.Error()}
	}
	if hashBuf(r.PrevHash, buf) != r.Hash {
		return &Break{Index: v.index, ID: r.ID, Why: "hash does not match its content (the record was edited)"}
	}
	v.prev = r.Hash
	return nil
}

// Last is the hash of the last record verified.
func (v *Verifier) Last() string { return v.prev }
