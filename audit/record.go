// Package audit is MeshGuard's audit trail (SPEC §7): one Record per
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
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Record is one decision, as SPEC §7 lists its fields.
type Record struct {
	ID              string          `json:"id"`
	Timestamp       time.Time       `json:"timestamp"`
	TraceID         string          `json:"traceId"`
	SpanID          string          `json:"spanId"`
	DecisionID      string          `json:"decisionId"`
	AgentID         string          `json:"agentId"`
	AgentName       string          `json:"agentName"`
	TrustTier       string          `json:"trustTier"`
	Action          string          `json:"action"`
	Resource        string          `json:"resource"`
	Method          string          `json:"method"`
	Path            string          `json:"path"`
	Host            string          `json:"host"`
	Decision        string          `json:"decision"` // allow or deny
	Status          int             `json:"status"`
	Reason          string          `json:"reason"`
	Policy          string          `json:"policy"`
	Rule            string          `json:"rule"`
	Chain           []string        `json:"chain"` // agent ids, root → actor
	DelegationDepth int             `json:"delegationDepth"`
	Source          string          `json:"source"`
	SourceAddress   string          `json:"sourceAddress"`
	PolicyRevision  string          `json:"policyRevision"`
	LatencyUs       int64           `json:"latencyUs"`
	Context         json.RawMessage `json:"context,omitempty"` // canonical JSON object, or absent
	Mode            string          `json:"mode"`
	PrevHash        string          `json:"prevHash"`
	Hash            string          `json:"hash"`
}

// GenesisHash is the PrevHash of the first record of a chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// hashed is what a hash covers: the record without its two hashes (the
// outer, always-empty fields hide the embedded ones from encoding/json).
type hashed struct {
	Record
	PrevHash string `json:"prevHash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// canonical is the encoding the hash covers.
func (r *Record) canonical() ([]byte, error) {
	c := hashed{Record: *r}
	// The same instant must always encode the same way.
	c.Timestamp = r.Timestamp.UTC()
	if len(r.Context) > 0 {
		ctx, err := CanonicalContext(r.Context)
		if err != nil {
			return nil, err
		}
		c.Context = ctx
	}
	return json.Marshal(c)
}

// CanonicalContext re-encodes a JSON object canonically (keys sorted,
// numbers and strings as encoding/json writes them), so a context stored
// and read back hashes the same. Anything but an object is an error.
func CanonicalContext(raw json.RawMessage) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, fmt.Errorf("audit: context is not a JSON object")
	}
	return json.Marshal(m)
}

// Seal sets r.PrevHash to prev and computes r.Hash.
func (r *Record) Seal(prev string) error {
	r.PrevHash = prev
	h, err := r.computeHash()
	if err != nil {
		return err
	}
	r.Hash = h
	return nil
}

func (r *Record) computeHash() (string, error) {
	body, err := r.canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.New()
	sum.Write([]byte(r.PrevHash))
	sum.Write(body)
	return hex.EncodeToString(sum.Sum(nil)), nil
}

// ErrBroken is wrapped by Verify's report of a broken chain.
var ErrBroken = errors.New("audit chain broken")

// Break says where and how a chain is broken.
type Break struct {
	Index int    // position of the first broken record in the walk
	ID    string // its id
	Why   string
}

func (b *Break) Error() string {
	return fmt.Sprintf("%v at record %d (%s): %s", ErrBroken, b.Index, b.ID, b.Why)
}

func (b *Break) Unwrap() error { return ErrBroken }

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
	h, err := r.computeHash()
	if err != nil {
		return &Break{Index: v.index, ID: r.ID, Why: err.Error()}
	}
	if h != r.Hash {
		return &Break{Index: v.index, ID: r.ID, Why: "hash does not match its content (the record was edited)"}
	}
	v.prev = r.Hash
	return nil
}

// Last is the hash of the last record verified.
func (v *Verifier) Last() string { return v.prev }
