package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
)

// What `agent apply` did to one agent.
const (
	applyCreated   = "created"
	applyUpdated   = "updated"
	applyRevoked   = "revoked"
	applyUnchanged = "unchanged"
)

// appliedAgent is one agent's line of `agent apply`, and its --json shape.
type appliedAgent struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	Action    string    `json:"action"`
	TrustTier string    `json:"trustTier"`
	Tags      []string  `json:"tags"`
	Status    string    `json:"status"`
	Changes   []string  `json:"changes,omitempty"`
	Token     string    `json:"token,omitempty"` // created active agents only
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// applyStep is what the plan says to do for one entry of the file.
type applyStep struct {
	want    policy.AgentEntry
	have    *api.Agent // nil: no agent of that name
	changes []string   // what differs, for the line printed
	revoke  bool       // the file says revoked, the server's is active
}

func (a *app) agentApplyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update the agents of an agents file, by name",
		Long: "Reads FILE, an agents file as `policy test --agents` reads it, and makes the server's\n" +
			"agents match it, by name: an agent it lacks is created, one whose tier or tags differ is\n" +
			"updated, one that matches is left alone, so a second run changes nothing. A file's\n" +
			"`status: revoked` revokes the agent (creating it first if need be). The file's ids are\n" +
			"not used (the server assigns ids); hosts, SPIFFE IDs and metadata are left as they are.\n\n" +
			"The whole file is checked, and the server's agents read, before the first change: a bad\n" +
			"file (exit 2), or an agent the file says is active but the server has revoked (exit 1;\n" +
			"revoked agents are never reactivated), changes nothing.\n\n" +
			"One line per agent. A created agent's token is printed on its line, and this is the only\n" +
			"time it is shown (`meshguard agent token NAME` issues another); --quiet prints those lines only.",
		Example: "  meshguard agent apply -f examples/agents.yaml\n  meshguard agent apply -f agents.yaml --json",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("file") {
				return usageErr("agent apply: give the agents file with -f FILE")
			}
			data, err := readInput("--file", file)
			if err != nil {
				return err
			}
			entries, err := policy.ParseAgentEntries(file, data)
			if err == nil {
				err = checkApplicable(file, entries)
			}
			if err != nil {
				return a.badInput(err)
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			have, err := allAgents(cmd.Context(), c, client.AgentFilter{Limit: agentPageSize})
			if err != nil {
				return a.apiErr(err)
			}
			plan, err := planApply(file, entries, have)
			if err != nil {
				return &ExitError{Code: ExitFailure, Err: err}
			}
			return a.runApply(cmd, c, plan)
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "agents file: agents: [{name, trustTier, tags, status}]")
	return cmd
}

// checkApplicable checks what the server will require of each agent, so a
// file it would refuse halfway is refused before the first change.
func checkApplicable(file string, entries []policy.AgentEntry) error {
	var errs policy.ErrorList
	for i, e := range entries {
		field := fmt.Sprintf("agents[%d]", i)
		if e.Name == "" {
			errs = append(errs, &policy.Error{File: file, Line: e.Line, Field: field + ".name",
				Msg: "missing: agent apply matches agents by name (the server assigns ids)"})
			continue
		}
		ag := identity.Agent{Name: e.Name, TrustTier: e.Tier, Tags: e.Tags, Status: identity.StatusActive}
		if err := ag.Validate(); err != nil {
			errs = append(errs, &policy.Error{File: file, Line: e.Line, Field: field,
				Msg: strings.TrimPrefix(err.Error(), identity.ErrInvalidAgent.Error()+": ")})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// errRevokedInFile: the file says active, the server has the agent revoked.
var errRevokedInFile = errors.New("revoked on the server")

// planApply compares the file with the server's agents and says what to
// do for each entry; an entry that would resurrect a revoked agent fails
// the whole plan.
func planApply(file string, entries []policy.AgentEntry, have []api.Agent) ([]applyStep, error) {
	byName := make(map[string]*api.Agent, len(have))
	for i := range have {
		byName[have[i].Name] = &have[i]
	}
	var revoked []error
	plan := make([]applyStep, len(entries))
	for i, e := range entries {
		s := applyStep{want: e, have: byName[e.Name]}
		switch {
		case s.have == nil:
		case s.have.Status != api.AgentActive:
			if e.Active {
				revoked = append(revoked, fmt.Errorf("%s:%d: agent %q (%s) is %w; the file says active, and revoked agents are never reactivated: mark it status: revoked, or give it another name",
					file, e.Line, e.Name, s.have.ID, errRevokedInFile))
			}
			// A revoked agent acts no more: its tier and tags are left as they are.
		default:
			if s.have.TrustTier != e.Tier {
				s.changes = append(s.changes, fmt.Sprintf("tier %s → %s", s.have.TrustTier, e.Tier))
			}
			if !sameSet(s.have.Tags, e.Tags) {
				s.changes = append(s.changes, fmt.Sprintf("tags %s → %s", orDash(strings.Join(s.have.Tags, ",")), orDash(strings.Join(e.Tags, ","))))
			}
			s.revoke = !e.Active
		}
		plan[i] = s
	}
	if len(revoked) > 0 {
		return nil, fmt.Errorf("nothing applied:\n%w", errors.Join(revoked...))
	}
	return plan, nil
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// runApply carries the plan out in file order, printing each agent's line
// as it goes (under --json, all of them at the end, including when a
// request fails halfway, so no token printed is lost).
func (a *app) runApply(cmd *cobra.Command, c *client.Client, plan []applyStep) error {
	ctx := cmd.Context()
	done := make([]appliedAgent, 0, len(plan))
	counts := map[string]int{}
	var failed error
	for _, s := range plan {
		r, err := applyOne(ctx, c, s)
		if err != nil {
			failed = fmt.Errorf("agent %s: %w", s.want.Name, err)
			break
		}
		counts[r.Action]++
		done = append(done, r)
		switch {
		case a.g.json:
		case r.Token != "":
			// Even under --quiet, as agent create prints its token: it
			// cannot be read back later.
			fmt.Fprintln(a.Stdout, applyLine(r))
		default:
			a.say("%s", applyLine(r))
		}
	}
	if a.g.json {
		if err := a.printJSON(struct {
			Agents []appliedAgent `json:"agents"`
		}{done}); err != nil {
			return err
		}
	}
	if failed != nil {
		return a.apiErr(failed)
	}
	if !a.g.json {
		if counts[applyUnchanged] == len(plan) {
			a.say("no changes: %s as in the file", count(len(plan), "agent"))
		} else {
			a.say("%d created, %d updated, %d revoked, %d unchanged", counts[applyCreated], counts[applyUpdated], counts[applyRevoked], counts[applyUnchanged])
		}
	}
	return nil
}

// applyOne makes one agent match its entry.
func applyOne(ctx context.Context, c *client.Client, s applyStep) (appliedAgent, error) {
	e := s.want
	tags := nonNil(e.Tags)
	var (
		ag     api.Agent
		r      appliedAgent
		action = applyUnchanged
	)
	switch {
	case s.have == nil:
		created, err := c.CreateAgent(ctx, api.CreateAgentRequest{Name: e.Name, TrustTier: e.Tier.String(), Tags: e.Tags})
		if err != nil {
			return r, err
		}
		ag, action = created.Agent, applyCreated
		if e.Active {
			r.Token, r.ExpiresAt = created.Token, created.ExpiresAt
		} else if ag, err = c.RevokeAgent(ctx, ag.ID); err != nil {
			return r, fmt.Errorf("created as %s, but revoking it: %w", created.ID, err)
		}
	default:
		ag = *s.have
		if len(s.changes) > 0 {
			tier := e.Tier.String()
			updated, err := c.UpdateAgent(ctx, ag.ID, api.AgentPatch{TrustTier: &tier, Tags: &tags})
			if err != nil {
				return r, err
			}
			ag, action = updated, applyUpdated
		}
		if s.revoke {
			revoked, err := c.RevokeAgent(ctx, ag.ID)
			if err != nil {
				return r, err
			}
			ag, action = revoked, applyRevoked
		}
	}
	r.Name, r.ID, r.Action, r.Changes = ag.Name, ag.ID, action, s.changes
	r.TrustTier, r.Tags, r.Status = ag.TrustTier.String(), nonNil(ag.Tags), string(ag.Status)
	return r, nil
}

// applyLine is an agent's line: what was done, and a created agent's token.
func applyLine(r appliedAgent) string {
	line := fmt.Sprintf("✓ %-9s %s (%s)", r.Action, r.Name, r.ID)
	switch {
	case r.Action == applyCreated:
		line += fmt.Sprintf(": tier %s, tags %s", r.TrustTier, orDash(strings.Join(r.Tags, ",")))
		if r.Status == string(identity.StatusRevoked) {
			line += ", revoked as the file says"
		}
	case len(r.Changes) > 0:
		line += ": " + strings.Join(r.Changes, ", ")
	}
	if r.Token != "" {
		line += fmt.Sprintf("\n    token (shown only now; it expires %s): %s", r.ExpiresAt.UTC().Format(time.RFC3339), r.Token)
	}
	return line
}
