// Package approvalapi answers human approvals (docs/governance.md
// "Answering an approval"): Service.Decide approves or denies one and
// records the decision in the audit trail, Service.Wait holds a caller
// until one is decided, and API serves both over HTTP — GET
// /v1/approvals/{id} to the agent that asked, and /admin/approvals to the
// admin token. The engine raises and uses approvals; the store keeps them.
package approvalapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
)

// Store keeps the approvals (store.SQLite, store.Postgres).
type Store interface {
	GetApproval(ctx context.Context, id string) (approval.Approval, error)
	ListApprovals(ctx context.Context, f approval.Filter) ([]approval.Approval, error)
	DecideApproval(ctx context.Context, d approval.Decision) (approval.Approval, error)
}

// Recorder writes audit records (audit.Writer), through the hash chain.
type Recorder interface {
	Write(ctx context.Context, r audit.Record) error
}

// Source is where a person's decision came from: the audit record's source.
type Source string

// The sources of a decision.
const (
	SourceAdmin Source = "admin" // the admin API (and so the CLI)
	SourceLink  Source = "link"  // a signed one-time link in a notification
	// SourceConsole is the web console's approvals page (docs/console.md).
	SourceConsole Source = "console"
)

// The audit record of a decision: its action, and its reason.
const (
	ActionApprove  = "approval:approve"
	ActionDeny     = "approval:deny"
	ReasonApproved = "approval_approved"
	ReasonDenied   = engine.ReasonApprovalDenied
)

// Defaults and bounds of waiting.
const (
	// DefaultMaxWaiters bounds the callers waiting at once on one replica.
	DefaultMaxWaiters = 1000
	// DefaultMaxWaitersPerAgent bounds the callers waiting at once on one
	// replica on the approvals of one agent: one agent (or a stolen token)
	// cannot take every waiter's place from the others.
	DefaultMaxWaitersPerAgent = DefaultMaxWaiters / 10
	// MaxPollInterval is the longest a waiter goes without reading the
	// store: a decision taken on another replica ends its wait that late
	// at most.
	MaxPollInterval = time.Second
)

// Errors callers branch on.
var (
	// ErrBusy: DefaultMaxWaiters (Config.MaxWaiters) callers wait already.
	ErrBusy = errors.New("too many callers waiting for approvals")
	// ErrUnrecorded: the decision is stored but its audit record could not
	// be written.
	ErrUnrecorded = errors.New("the decision is stored but its audit record failed")
)

// Config wires a Service. Store is required.
type Config struct {
	Store Store
	// Recorder is the audit trail's writer; nil when the trail is off.
	Recorder Recorder
	// MaxWaiters bounds concurrent waits (DefaultMaxWaiters if 0).
	MaxWaiters int
	// MaxWaitersPerAgent bounds concurrent waits on one agent's approvals
	// (DefaultMaxWaitersPerAgent if 0, at most MaxWaiters).
	MaxWaitersPerAgent int
	// PollInterval is how often a waiter reads the store, for decisions
	// taken on other replicas (MaxPollInterval if 0; at most that).
	PollInterval time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
}

// Service decides approvals and waits for them. Create it with New.
type Service struct {
	cfg  Config
	log  *slog.Logger
	stop <-chan struct{} // closed when the server shuts down: waits end

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every decision here
	waiters int
	byAgent map[string]int // waiters per agent whose approval they wait on
}

// New returns a Service; every wait ends when ctx does (the server's
// shutdown), answering the approval as it stands.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("approvalapi: Config.Store is required")
	}
	if cfg.MaxWaiters < 0 || cfg.MaxWaitersPerAgent < 0 || cfg.PollInterval < 0 || cfg.PollInterval > MaxPollInterval {
		return nil, fmt.Errorf("approvalapi: MaxWaiters must not be negative and PollInterval within 0..%s", MaxPollInterval)
	}
	if cfg.MaxWaiters == 0 {
		cfg.MaxWaiters = DefaultMaxWaiters
	}
	if cfg.MaxWaitersPerAgent == 0 {
		cfg.MaxWaitersPerAgent = DefaultMaxWaitersPerAgent
	}
	cfg.MaxWaitersPerAgent = min(cfg.MaxWaitersPerAgent, cfg.MaxWaiters)
	if cfg.PollInterval == 0 {
		cfg.PollInterval = MaxPollInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, log: cfg.Logger, stop: ctx.Done(), changed: make(chan struct{}), byAgent: map[string]int{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Decide applies a person's decision to a pending approval and records it
// in the audit trail, under the approval's trace: the one function behind
// the admin API, the signed link and the console. d.By must be clean text (no control
// characters, valid UTF-8). Errors: approval.ErrInvalid (nothing changed),
// approval.ErrNotFound, approval.ErrExpired, approval.ErrNotPending (from
// the store; nothing changed), ErrUnrecorded (the decision stands, with
// the approval).
func (s *Service) Decide(ctx context.Context, d approval.Decision, src Source) (approval.Approval, error) {
	if src != SourceAdmin && src != SourceLink && src != SourceConsole {
		return approval.Approval{}, fmt.Errorf("decide approval: %w: source %q (expected admin, link or console)", approval.ErrInvalid, src)
	}
	if err := cleanText("by", d.By); err != nil {
		return approval.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	if strings.TrimSpace(d.By) == "" {
		return approval.Approval{}, fmt.Errorf("decide approval: %w: by: required (who decides)", approval.ErrInvalid)
	}
	if err := cleanText("reason", d.Reason); err != nil {
		return approval.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	a, err := s.cfg.Store.DecideApproval(ctx, d)
	if err != nil {
		return approval.Approval{}, err
	}
	// Recorded before the waiting checks are woken: the trail then holds
	// the approval before the decision it lets through, as a trace reads
	// (requested, approved, granted). Woken either way: the decision is
	// stored, and a waiter would find it at its next look.
	err = s.record(ctx, a, d, src)
	s.wake()
	if err != nil {
		s.log.ErrorContext(ctx, "approval decided but not recorded", "approval", a.ID, "error", err)
		return a, fmt.Errorf("%w: approval %s: %w", ErrUnrecorded, a.ID, err)
	}
	s.log.InfoContext(ctx, "approval decided", "approval", a.ID, "status", a.Status, "by", a.DecidedBy, "source", src, "trace_id", a.TraceID)
	return a, nil
}

// record writes the decision's audit record: the approval's agent and
// trace, action approval:approve or approval:deny, resource its id.
func (s *Service) record(ctx context.Context, a approval.Approval, d approval.Decision, src Source) error {
	if s.cfg.Recorder == nil {
		return nil
	}
	now := s.cfg.Now()
	rec := audit.Record{
		ID: engine.NewAuditID(now), Timestamp: now, TraceID: a.TraceID,
		AgentID: a.AgentID, AgentName: a.AgentName, Resource: a.ID, Chain: a.Chain,
		Policy: a.Policy, Rule: a.Rule, Source: string(src),
		Context:  map[string]any{"by": d.By},
		Approval: &audit.Approval{ID: a.ID},
	}
	if n := len(a.Chain); n > 1 {
		rec.DelegationDepth = n - 1
	}
	if d.Reason != "" {
		rec.Context["reason"] = d.Reason
	}
	if d.Approve {
		rec.Action, rec.Decision, rec.Status, rec.Reason, rec.Approval.Outcome = ActionApprove, "allow", 200, ReasonApproved, string(approval.Approved)
	} else {
		rec.Action, rec.Decision, rec.Status, rec.Reason, rec.Approval.Outcome = ActionDeny, "deny", 403, ReasonDenied, string(approval.Denied)
	}
	return s.cfg.Recorder.Write(ctx, rec)
}

// cleanText refuses what a person's name or reason must not hold: invalid
// UTF-8, control characters (a forged log line, a terminal escape) and
// bidirectional controls (a name that reads as another's).
func cleanText(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s: not valid UTF-8", approval.ErrInvalid, field)
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			return fmt.Errorf("%w: %s: control characters are not allowed", approval.ErrInvalid, field)
		}
	}
	return nil
}

// wake ends the current wait round of every waiter here: something was
// decided.
func (s *Service) wake() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Service) round() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Waiters is how many callers wait now (a gauge, and what tests wait on
// before deciding).
func (s *Service) Waiters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters
}

func (s *Service) enter(agent string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters >= s.cfg.MaxWaiters || s.byAgent[agent] >= s.cfg.MaxWaitersPerAgent {
		return false
	}
	s.waiters++
	s.byAgent[agent]++
	return true
}

func (s *Service) leave(agent string) {
	s.mu.Lock()
	s.waiters--
	if s.byAgent[agent]--; s.byAgent[agent] == 0 {
		delete(s.byAgent, agent)
	}
	s.mu.Unlock()
}

// Get is the approval with id as it stands.
func (s *Service) Get(ctx context.Context, id string) (approval.Approval, error) {
	return s.cfg.Store.GetApproval(ctx, id)
}

// List is one page of approvals, newest first.
func (s *Service) List(ctx context.Context, f approval.Filter) ([]approval.Approval, error) {
	return s.cfg.Store.ListApprovals(ctx, f)
}

// Wait returns approval id once it is no longer pending, or as it stands
// when limit has passed or the server shuts down. A decision here ends the
// wait at once; one on another replica within PollInterval. ErrBusy when
// MaxWaiters callers wait already, or MaxWaitersPerAgent on the approvals
// of id's agent; ctx's error when the caller leaves.
func (s *Service) Wait(ctx context.Context, id string, limit time.Duration) (approval.Approval, error) {
	round := s.round()
	a, err := s.cfg.Store.GetApproval(ctx, id)
	if err != nil || a.Status != approval.Pending || limit <= 0 {
		return a, err
	}
	if !s.enter(a.AgentID) {
		return a, ErrBusy
	}
	defer s.leave(a.AgentID)
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-s.stop:
			return s.cfg.Store.GetApproval(ctx, id)
		case <-deadline.C:
			return s.cfg.Store.GetApproval(ctx, id)
		case <-round:
		case <-poll.C:
		}
		// The round is taken before reading, so a decision between the
		// read and the next select is not missed.
		round = s.round()
		if a, err = s.cfg.Store.GetApproval(ctx, id); err != nil || a.Status != approval.Pending {
			return a, err
		}
	}
}
