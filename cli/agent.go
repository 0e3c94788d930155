package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/trust"
)

func (a *app) agentCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "agent",
		Short: "Create, list, change and revoke agents on the server",
		Long: "Manages the agents of a running MeshGuard through its admin API (--gateway,\n" +
			"--admin-token). Wherever ID appears, an agent id or its name is accepted.",
	})
	cmd.AddCommand(a.agentCreateCmd(), a.agentListCmd(), a.agentShowCmd(), a.agentUpdateCmd(),
		a.agentRevokeCmd(), a.agentTokenCmd(), a.agentApplyCmd())
	return cmd
}

// agentFields are the flags that describe an agent (create and update).
type agentFields struct {
	name, trust          string
	tags, hosts, spiffes []string
	metadata             map[string]string
	tagsV, hostV, spifV  listValue
	metaV                mapValue
}

func (f *agentFields) register(cmd *cobra.Command) {
	f.tagsV = listValue{list: &f.tags}
	f.hostV = listValue{list: &f.hosts}
	f.spifV = listValue{list: &f.spiffes}
	f.metaV = mapValue{m: &f.metadata}
	fl := cmd.Flags()
	fl.StringVar(&f.trust, "trust", "", "trust tier: untrusted, verified, trusted or privileged")
	fl.Var(&f.tagsV, "tags", "tags, comma-separated (policies match them in appliesTo.tags)")
	fl.Var(&f.hostV, "hosts", "host names under which the agent is reached through the mesh, comma-separated")
	fl.Var(&f.spifV, "spiffe-id", "a SPIFFE ID that is this agent (its workload's mesh identity, such as\n"+
		"spiffe://cluster.local/ns/NS/sa/SA): a request from it needs no token; repeat for several")
	fl.Var(&f.metaV, "metadata", "metadata as key=value pairs, comma-separated")
}

// tier checks --trust locally and returns its canonical name.
func (f *agentFields) tier() (string, error) {
	t, err := trust.Parse(f.trust)
	if err != nil {
		return "", usageErr("--trust: %v", err)
	}
	return t.String(), nil
}

// ttlFlag checks a --ttl flag: when given, a positive lifetime.
func ttlFlag(cmd *cobra.Command, ttl time.Duration) error {
	if cmd.Flags().Changed("ttl") && ttl <= 0 {
		return usageErr("--ttl: %v: expected a positive lifetime such as 24h or 90m", ttl)
	}
	return nil
}

// issuedJSON is the --json shape of `agent create` (docs/cli.md: id, name,
// trustTier, tags, hosts, token) and, with agentId, of `agent token`.
// With --output the token goes to the file only, and tokenFile names it.
type issuedJSON struct {
	AgentID   string    `json:"agentId,omitempty"`
	ID        string    `json:"id,omitempty"`
	Name      string    `json:"name,omitempty"`
	TrustTier string    `json:"trustTier,omitempty"`
	Tags      *[]string `json:"tags,omitempty"`
	Hosts     *[]string `json:"hosts,omitempty"`
	SPIFFEIDs []string  `json:"spiffeIds,omitempty"`
	Token     string    `json:"token,omitempty"`
	TokenFile string    `json:"tokenFile,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// deliverToken prints a token (stdout holds only the token, so
// TOKEN=$(meshguard agent create x) works) or writes it to --output.
func (a *app) deliverToken(out *secretFile, js issuedJSON, token string) error {
	if out != nil {
		if err := out.commit(token); err != nil {
			return err
		}
		js.TokenFile = out.path
	} else {
		js.Token = token
	}
	if a.g.json {
		return a.printJSON(js)
	}
	if out == nil {
		fmt.Fprintln(a.Stdout, token)
	}
	return nil
}

func (a *app) agentCreateCmd() *cobra.Command {
	var (
		f      agentFields
		ttl    time.Duration
		output string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Register an agent and print its first token",
		Long: "Registers an agent and prints its first token, and nothing else, on stdout, so\n" +
			"TOKEN=$(meshguard agent create NAME) works; a summary goes to stderr (not with --quiet).\n" +
			"--output FILE writes the token to FILE (mode 0600) instead. The tier defaults to untrusted.",
		Example: "  meshguard agent create researcher --trust verified --tags researcher --hosts researcher.mesh.local\n" +
			"  meshguard agent create researcher --trust verified --spiffe-id spiffe://cluster.local/ns/research/sa/researcher\n" +
			"  TOKEN=$(meshguard agent create emailer --trust verified --tags emailer --ttl 1h)\n" +
			"  meshguard agent create orchestrator --trust trusted --tags orchestrator --output orchestrator.jwt",
		Args: exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			req := api.CreateAgentRequest{Name: args[0], Tags: f.tags, Hosts: f.hosts, SPIFFEIDs: f.spiffes, Metadata: f.metadata, TTL: api.Duration(ttl)}
			if strings.TrimSpace(req.Name) == "" {
				return usageErr("agent create: NAME must not be empty")
			}
			if f.trust != "" {
				var err error
				if req.TrustTier, err = f.tier(); err != nil {
					return err
				}
			}
			if err := ttlFlag(cmd, ttl); err != nil {
				return err
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			file, err := outputFile(cmd, output)
			if err != nil {
				return err
			}
			defer file.abort()
			ag, err := c.CreateAgent(cmd.Context(), req)
			if err != nil {
				return a.apiErr(err)
			}
			tags, hosts := nonNil(ag.Tags), nonNil(ag.Hosts)
			if err := a.deliverToken(file, issuedJSON{ID: ag.ID, Name: ag.Name, TrustTier: ag.TrustTier.String(),
				Tags: &tags, Hosts: &hosts, SPIFFEIDs: ag.SPIFFEIDs, ExpiresAt: ag.ExpiresAt}, ag.Token); err != nil {
				return fmt.Errorf("agent %s (%s) was created, but %w; issue a new token with `meshguard agent token %s`", ag.Name, ag.ID, err, ag.ID)
			}
			if !a.g.json {
				a.note("✓ created agent %s (%s), tier %s, tags %s, hosts %s, SPIFFE IDs %s", ag.Name, ag.ID, ag.TrustTier,
					orDash(strings.Join(ag.Tags, ",")), orDash(strings.Join(ag.Hosts, ",")), orDash(strings.Join(ag.SPIFFEIDs, ",")))
				a.noteToken(file, ag.ExpiresAt)
			}
			return nil
		}),
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.DurationVar(&ttl, "ttl", 0, "lifetime of the first token, such as 24h (default: the server's, 24h unless configured)")
	fl.StringVarP(&output, "output", "o", "", "write the token to this file (mode 0600) instead of stdout")
	return cmd
}

// outputFile prepares --output's file when the flag was given (nil when
// not), before any request, so a bad path costs nothing on the server.
func outputFile(cmd *cobra.Command, path string) (*secretFile, error) {
	if !cmd.Flags().Changed("output") {
		return nil, nil
	}
	return newSecretFile(path)
}

// noteToken tells where the token went and when it expires.
func (a *app) noteToken(file *secretFile, exp time.Time) {
	where := "printed on stdout"
	if file != nil {
		where = "written to " + file.path + " (mode 0600)"
	}
	a.note("  token %s; it expires %s", where, exp.UTC().Format(time.RFC3339))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// agentPageSize is how many agents `agent list` asks for at a time: the
// API's maximum. It follows the pages until the last one.
var agentPageSize = 1000

// allAgents follows the pages of agents filter selects to the last one.
func allAgents(ctx context.Context, c *client.Client, filter client.AgentFilter) ([]api.Agent, error) {
	agents := []api.Agent{}
	for {
		page, err := c.ListAgents(ctx, filter)
		if err != nil {
			return nil, err
		}
		agents = append(agents, page.Agents...)
		if page.Next == "" || page.Next == filter.After || len(page.Agents) == 0 {
			return agents, nil
		}
		filter.After = page.Next
	}
}

func (a *app) agentListCmd() *cobra.Command {
	var tier, status, tag string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List agents: ID, NAME, TIER, STATUS, TAGS, HOSTS, SPIFFE IDS",
		Long:    "Lists the agents in name order, every page of them. --json prints an array of agents.",
		Example: "  meshguard agent list\n  meshguard agent list --trust verified --status active\n  meshguard agent list --json",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			filter := client.AgentFilter{Status: status, Tag: tag, Limit: agentPageSize}
			if tier != "" {
				t, err := trust.Parse(tier)
				if err != nil {
					return usageErr("--trust: %v", err)
				}
				filter.Trust = t.String()
			}
			if status != "" && status != api.AgentActive && status != api.AgentRevoked {
				return usageErr("--status: %q: expected active or revoked", status)
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			agents, err := allAgents(cmd.Context(), c, filter)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(agents)
			}
			if len(agents) == 0 {
				a.say("no agents")
				return nil
			}
			rows := make([][]string, len(agents))
			for i, ag := range agents {
				rows[i] = []string{ag.ID, ag.Name, ag.TrustTier.String(), string(ag.Status),
					orDash(strings.Join(ag.Tags, ",")), orDash(strings.Join(ag.Hosts, ",")), orDash(strings.Join(ag.SPIFFEIDs, ","))}
			}
			a.table([]string{"ID", "NAME", "TIER", "STATUS", "TAGS", "HOSTS", "SPIFFE IDS"}, rows)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&tier, "trust", "", "only agents of this trust tier")
	fl.StringVar(&status, "status", "", "only active or revoked agents")
	fl.StringVar(&tag, "tag", "", "only agents with this tag")
	return cmd
}

// showAgent prints an agent as aligned "key: value" lines, unless --quiet.
func (a *app) showAgent(ag api.Agent) {
	if a.g.quiet {
		return
	}
	meta := make([]string, 0, len(ag.Metadata))
	for k, v := range ag.Metadata {
		meta = append(meta, k+"="+v)
	}
	slices.Sort(meta)
	a.keyValues([][2]string{
		{"id", ag.ID},
		{"name", ag.Name},
		{"trust tier", ag.TrustTier.String()},
		{"status", string(ag.Status)},
		{"tags", orDash(strings.Join(ag.Tags, ", "))},
		{"hosts", orDash(strings.Join(ag.Hosts, ", "))},
		{"spiffe ids", orDash(strings.Join(ag.SPIFFEIDs, ", "))},
		{"metadata", orDash(strings.Join(meta, ", "))},
		{"created", ag.CreatedAt.UTC().Format(time.RFC3339)},
		{"updated", ag.UpdatedAt.UTC().Format(time.RFC3339)},
	})
}

func (a *app) agentShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show one agent (by id or name)",
		Example: "  meshguard agent show researcher\n  meshguard agent show agent_ou6ymsvewq7qeevltttd --json",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			ag, err := c.GetAgent(cmd.Context(), args[0])
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(ag)
			}
			a.showAgent(ag)
			return nil
		}),
	}
}

func (a *app) agentUpdateCmd() *cobra.Command {
	var f agentFields
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change an agent's name, tier, tags, hosts, SPIFFE IDs or metadata",
		Long: "Sends only the fields whose flags are given; the others keep their values. --tags,\n" +
			"--hosts, --spiffe-id and --metadata replace the whole list or map; an empty value\n" +
			"(--tags '') clears it.\n" +
			"A demotion takes effect at once, for tokens already issued too.",
		Example: "  meshguard agent update researcher --trust trusted --tags researcher,papers\n" +
			"  meshguard agent update researcher --hosts '' --metadata owner=research@example.com\n" +
			"  meshguard agent update researcher --spiffe-id spiffe://cluster.local/ns/research/sa/researcher",
		Args: exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			var p api.AgentPatch
			fl := cmd.Flags()
			if fl.Changed("name") {
				p.Name = &f.name
			}
			if fl.Changed("trust") {
				t, err := f.tier()
				if err != nil {
					return err
				}
				p.TrustTier = &t
			}
			if fl.Changed("tags") {
				p.Tags = &f.tags
			}
			if fl.Changed("hosts") {
				p.Hosts = &f.hosts
			}
			if fl.Changed("spiffe-id") {
				p.SPIFFEIDs = &f.spiffes
			}
			if fl.Changed("metadata") {
				p.Metadata = &f.metadata
			}
			if p == (api.AgentPatch{}) {
				return usageErr("agent update: nothing to change: give one or more of --name, --trust, --tags, --hosts, --spiffe-id, --metadata")
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			ag, err := c.UpdateAgent(cmd.Context(), args[0], p)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(ag)
			}
			a.say("✓ updated agent %s (%s)", ag.Name, ag.ID)
			a.showAgent(ag)
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.name, "name", "", "new name (unique; tokens already issued keep working)")
	return cmd
}

func (a *app) agentRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an agent: every token it holds is refused from the next request on",
		Long: "Revokes the agent: its tokens are refused at once, on every replica, and delegation\n" +
			"chains it is part of break. Agents are never deleted (the audit trail keeps their names);\n" +
			"revoking twice is not an error.",
		Example: "  meshguard agent revoke old-emailer",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			ag, err := c.RevokeAgent(cmd.Context(), args[0])
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(ag)
			}
			a.say("✓ revoked agent %s (%s): its tokens are refused from now on", ag.Name, ag.ID)
			return nil
		}),
	}
}

func (a *app) agentTokenCmd() *cobra.Command {
	var (
		ttl    time.Duration
		output string
	)
	cmd := &cobra.Command{
		Use:   "token ID",
		Short: "Issue a new token for an agent",
		Long: "Issues a new token for an active agent and prints it, and nothing else, on stdout\n" +
			"(or writes it to --output FILE, mode 0600). Tokens issued earlier stay valid until they expire.",
		Example: "  TOKEN=$(meshguard agent token researcher --ttl 1h)\n  meshguard agent token researcher --output researcher.jwt",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if err := ttlFlag(cmd, ttl); err != nil {
				return err
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			file, err := outputFile(cmd, output)
			if err != nil {
				return err
			}
			defer file.abort()
			tok, err := c.IssueToken(cmd.Context(), args[0], ttl)
			if err != nil {
				return a.apiErr(err)
			}
			if err := a.deliverToken(file, issuedJSON{AgentID: tok.AgentID, ExpiresAt: tok.ExpiresAt}, tok.Token); err != nil {
				return err
			}
			if !a.g.json {
				who := tok.AgentID
				if args[0] != tok.AgentID {
					who = args[0] + " (" + tok.AgentID + ")"
				}
				a.note("✓ new token for agent %s", who)
				a.noteToken(file, tok.ExpiresAt)
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.DurationVar(&ttl, "ttl", 0, "lifetime of the token, such as 1h (default: the server's, 24h unless configured)")
	fl.StringVarP(&output, "output", "o", "", "write the token to this file (mode 0600) instead of stdout")
	return cmd
}
