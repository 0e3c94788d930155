package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A checkpoint is the trail's head signed by MeshGuard, as Certificate
// Transparency's signed tree heads are: every chain's last position and
// hash at a time. Whoever keeps one can later prove the trail still
// reaches it — records deleted from a chain's end (which no hash link can
// show) are caught. It is a signed note in the format of Go's checksum
// database (golang.org/x/mod/sumdb/note): the text, a blank line, and
// "— <key name> <base64 of key hash and Ed25519 signature>".

// Checkpoint is a verified signed head. Parse one with OpenCheckpoint.
type Checkpoint struct {
	Time   time.Time       `json:"time"`
	Chains []ChainPosition `json:"chains"`
	// Key is the verifier key that signed it (VerifierKey's form).
	Key string `json:"key"`
	// Note is the signed note itself, the part that counts: Time and
	// Chains are read from it.
	Note string `json:"note"`
}

// ChainPosition is one chain's head in a checkpoint.
type ChainPosition struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`  // the head record's position in the store
	Hash  string `json:"hash"` // its hash
}

// Checkpoint errors.
var (
	// ErrBadCheckpoint is a checkpoint that does not parse or whose
	// signature does not verify.
	ErrBadCheckpoint = errors.New("invalid audit checkpoint")
	// ErrCheckpointNotReached is a trail that no longer reaches a
	// checkpoint: the checkpointed record is gone or differs.
	ErrCheckpointNotReached = errors.New("the audit trail no longer reaches the checkpoint")
)

const (
	checkpointOrigin = "meshguard.audit.checkpoint/v1"
	// CheckpointKeyName names MeshGuard's checkpoint keys in notes.
	CheckpointKeyName = "meshguard-audit"
	algEd25519        = 1
	// maxCheckpointChains bounds what a checkpoint may list (one chain a
	// replica process; more is not a checkpoint MeshGuard wrote).
	maxCheckpointChains = 100_000
)

// CheckpointSigner signs checkpoints with an Ed25519 key.
type CheckpointSigner struct {
	priv ed25519.PrivateKey
	hash uint32
}

// NewCheckpointSigner makes a signer from a private key in the form
// GenerateCheckpointKey writes ("PRIVATE+KEY+name+hash+base64").
func NewCheckpointSigner(skey string) (*CheckpointSigner, error) {
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" || parts[2] != CheckpointKeyName {
		return nil, fmt.Errorf("%w: not a MeshGuard checkpoint private key", ErrBadCheckpoint)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return nil, fmt.Errorf("%w: the private key's data is malformed", ErrBadCheckpoint)
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	return &CheckpointSigner{priv: priv, hash: keyHash(priv.Public().(ed25519.PublicKey))}, nil
}

// GenerateCheckpointKey returns a new private key.
func GenerateCheckpointKey() string {
	_, priv, _ := ed25519.GenerateKey(rand.Reader) // never fails (Go 1.24+)
	pub := priv.Public().(ed25519.PublicKey)
	return fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", CheckpointKeyName, keyHash(pub),
		base64.StdEncoding.EncodeToString(append([]byte{algEd25519}, priv.Seed()...)))
}

// LoadCheckpointKey reads the private key at path, creating it (mode 0600)
// if it does not exist.
func LoadCheckpointKey(path string) (*CheckpointSigner, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := GenerateCheckpointKey()
		f, cerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if cerr != nil {
			return nil, fmt.Errorf("audit checkpoint key %s: %w", path, cerr)
		}
		_, werr := f.WriteString(key + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("audit checkpoint key %s: %w", path, werr)
		}
		b = []byte(key)
	} else if err != nil {
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	s, err := NewCheckpointSigner(string(b))
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint key %s: %w", path, err)
	}
	return s, nil
}

// VerifierKey is the public key that verifies this signer's checkpoints,
// as a Go note verifier key ("name+hash+base64"): safe to publish.
func (s *CheckpointSigner) VerifierKey() string {
	pub := s.priv.Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%08x+%s", CheckpointKeyName, s.hash, base64.StdEncoding.EncodeToString(append([]byte{algEd25519}, pub...)))
}

func keyHash(pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(CheckpointKeyName + "\n"))
	h.Write([]byte{algEd25519})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// Sign signs the heads at t. Chains are sorted by name.
func (s *CheckpointSigner) Sign(t time.Time, chains []ChainPosition) (Checkpoint, error) {
	chains = slices.Clone(chains)
	slices.SortFunc(chains, func(a, b ChainPosition) int { return strings.Compare(a.Chain, b.Chain) })
	var b strings.Builder
	b.WriteString(checkpointOrigin + "\n")
	b.WriteString("time " + t.UTC().Format(time.RFC3339Nano) + "\n")
	for _, c := range chains {
		if len(c.Hash) != len(GenesisHash) || strings.ContainsAny(c.Hash, " \n") || c.Seq < 0 {
			return Checkpoint{}, fmt.Errorf("audit checkpoint: chain %q: head %q at %d is not a record's", c.Chain, c.Hash, c.Seq)
		}
		fmt.Fprintf(&b, "chain %s %d %s\n", strconv.Quote(c.Chain), c.Seq, c.Hash)
	}
	text := b.String()
	sig := ed25519.Sign(s.priv, []byte(text))
	var hb [4]byte
	binary.BigEndian.PutUint32(hb[:], s.hash)
	note := text + "\n— " + CheckpointKeyName + " " + base64.StdEncoding.EncodeToString(append(hb[:], sig...)) + "\n"
	return Checkpoint{Time: t.UTC(), Chains: chains, Key: s.VerifierKey(), Note: note}, nil
}

// OpenCheckpoint verifies a signed note against the verifier key and
// returns the checkpoint it holds.
func OpenCheckpoint(note, key string) (Checkpoint, error) {
	pub, hash, err := parseVerifierKey(key)
	if err != nil {
		return Checkpoint{}, err
	}
	text, sigLine, ok := strings.Cut(note, "\n\n— ")
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w: no signature line", ErrBadCheckpoint)
	}
	text += "\n"
	verified := false
	for _, line := range strings.Split(strings.TrimSuffix("— "+sigLine, "\n"), "\n") {
		name, b64, ok := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if !ok || !strings.HasPrefix(line, "— ") || err != nil || len(raw) != 4+ed25519.SignatureSize {
			return Checkpoint{}, fmt.Errorf("%w: malformed signature line", ErrBadCheckpoint)
		}
		if name == CheckpointKeyName && binary.BigEndian.Uint32(raw) == hash && ed25519.Verify(pub, []byte(text), raw[4:]) {
			verified = true
		}
	}
	if !verified {
		return Checkpoint{}, fmt.Errorf("%w: no valid signature by key %.40s…", ErrBadCheckpoint, key)
	}
	cp := Checkpoint{Key: key, Note: note, Chains: []ChainPosition{}}
	sc := bufio.NewScanner(bytes.NewReader([]byte(text)))
	line := 0
	for sc.Scan() {
		l := sc.Text()
		line++
		switch {
		case line == 1:
			if l != checkpointOrigin {
				return Checkpoint{}, fmt.Errorf("%w: not a MeshGuard audit checkpoint (%q)", ErrBadCheckpoint, l)
			}
		case line == 2:
			t, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(l, "time "))
			if err != nil || !strings.HasPrefix(l, "time ") {
				return Checkpoint{}, fmt.Errorf("%w: line 2: expected its time", ErrBadCheckpoint)
			}
			cp.Time = t
		default:
			c, err := parseChainLine(l)
			if err != nil || len(cp.Chains) == maxCheckpointChains {
				return Checkpoint{}, fmt.Errorf("%w: line %d: %q", ErrBadCheckpoint, line, l)
			}
			cp.Chains = append(cp.Chains, c)
		}
	}
	if line < 2 {
		return Checkpoint{}, fmt.Errorf("%w: too short", ErrBadCheckpoint)
	}
	return cp, nil
}

func parseChainLine(l string) (ChainPosition, error) {
	rest, ok := strings.CutPrefix(l, "chain ")
	if !ok {
		return ChainPosition{}, errors.New("not a chain line")
	}
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return ChainPosition{}, err
	}
	name, _ := strconv.Unquote(q)
	f := strings.Fields(rest[len(q):])
	if len(f) != 2 || len(f[1]) != len(GenesisHash) {
		return ChainPosition{}, errors.New("expected a position and a hash")
	}
	seq, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || seq < 0 {
		return ChainPosition{}, errors.New("bad position")
	}
	return ChainPosition{Chain: name, Seq: seq, Hash: f[1]}, nil
}

func parseVerifierKey(key string) (ed25519.PublicKey, uint32, error) {
	parts := strings.SplitN(strings.TrimSpace(key), "+", 3)
	if len(parts) != 3 || parts[0] != CheckpointKeyName {
		return nil, 0, fmt.Errorf("%w: %.40q is not a MeshGuard checkpoint verifier key", ErrBadCheckpoint, key)
	}
	h, err := strconv.ParseUint(parts[1], 16, 32)
	raw, berr := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(parts[1]) != 8 || berr != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != algEd25519 {
		return nil, 0, fmt.Errorf("%w: the verifier key is malformed", ErrBadCheckpoint)
	}
	pub := ed25519.PublicKey(raw[1:])
	if keyHash(pub) != uint32(h) {
		return nil, 0, fmt.Errorf("%w: the verifier key's hash does not match its key", ErrBadCheckpoint)
	}
	return pub, uint32(h), nil
}

// Heads is what SignHeads reads: every chain's head.
type Heads interface {
	AuditChains(ctx context.Context) ([]ChainHead, error)
}

// SignHeads signs the trail's current heads, every chain's, at now.
func SignHeads(ctx context.Context, h Heads, s *CheckpointSigner, now time.Time) (Checkpoint, error) {
	heads, err := h.AuditChains(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	ps := make([]ChainPosition, 0, len(heads))
	for _, c := range heads {
		ps = append(ps, ChainPosition{Chain: c.ID, Seq: c.Seq, Hash: c.Head})
	}
	return s.Sign(now, ps)
}
