package cli

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
)

func (a *app) tokensCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "tokens",
		Short: "Revoke single agent tokens and list the revoked ones",
	})
	cmd.AddCommand(a.tokensRevokeCmd(), a.tokensRevokedCmd())
	return cmd
}

// maxTokenFile bounds what --token-file reads.
const maxTokenFile = identity.MaxTokenSize + 2

func (a *app) tokensRevokeCmd() *cobra.Command {
	var file, jti, agent, reason string
	cmd := &cobra.Command{
		Use:   "revoke [TOKEN]",
		Short: "Revoke one agent token: the agent's other tokens keep working",
		Long: "Revokes one token, refused from the next request on by every replica and wasm filter\n" +
			"(401 token_revoked) until it expires. Give the token itself (an argument, or --token-file\n" +
			"to keep it out of the shell history and the process list): MeshGuard checks it signed it,\n" +
			"even if it has expired or its agent is revoked. Or give its --jti and --agent (id or\n" +
			"name), e.g. from the log line that issued it. Revoking twice is not an error.",
		Example: "  meshguard tokens revoke --token-file leaked.jwt --reason \"pasted in a ticket\"\n" +
			"  meshguard tokens revoke --jti 6i1cT0rVb0hJ2N0x3Qx2-w --agent researcher",
		Args: cobra.MaximumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			req := api.RevokeTokenRequest{JTI: jti, Reason: reason}
			byToken := len(args) == 1 || file != ""
			switch {
			case len(args) == 1 && file != "":
				return usageErr("give the token as an argument or with --token-file, not both")
			case byToken && (jti != "" || agent != ""):
				return usageErr("give the token, or --jti and --agent, not both")
			case !byToken && (jti == "" || agent == ""):
				return usageErr("give the token to revoke, or --jti and --agent")
			case len(args) == 1:
				req.Token = args[0]
			case file != "":
				tok, err := readTokenFile(file)
				if err != nil {
					return err
				}
				req.Token = tok
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			if agent != "" {
				if strings.HasPrefix(agent, identity.IDPrefix) {
					req.AgentID = agent
				} else {
					ag, err := c.GetAgent(cmd.Context(), agent)
					if err != nil {
						return a.apiErr(err)
					}
					req.AgentID = ag.ID
				}
			}
			r, err := c.RevokeToken(cmd.Context(), req)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(r)
			}
			if !r.Created {
				a.say("✓ token %s of agent %s was revoked already (%s)", r.JTI, r.AgentID, r.RevokedAt.Format(time.RFC3339))
				return nil
			}
			a.say("✓ revoked token %s of agent %s: refused from now on, until it expires %s", r.JTI, r.AgentID, r.ExpiresAt.Format(time.RFC3339))
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "token-file", "", "read the token from this file")
	fl.StringVar(&jti, "jti", "", "the token's jti (with --agent), when the token itself is not at hand")
	fl.StringVar(&agent, "agent", "", "the id or name of the token's agent (with --jti)")
	fl.StringVar(&reason, "reason", "", "why, kept with the revocation (at most 256 characters)")
	return cmd
}

// readTokenFile reads one token from path, bounded.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", usageErr("--token-file: %v", err)
	}
	defer f.Close()
	buf := make([]byte, maxTokenFile+1)
	n, _ := f.Read(buf)
	if n > maxTokenFile {
		return "", usageErr("--token-file: longer than a token can be (%d bytes)", identity.MaxTokenSize)
	}
	tok := strings.TrimSpace(string(buf[:n]))
	if tok == "" {
		return "", usageErr("--token-file: %s is empty", path)
	}
	return tok, nil
}

func (a *app) tokensRevokedCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "revoked",
		Short:   "List the revoked tokens that have not expired: JTI, AGENT, EXPIRES, REVOKED, REASON",
		Long:    "Lists the tokens revoked one by one whose expiry has not passed, in jti order, every page of\nthem. No token is ever shown: only its jti. --json prints an array.",
		Example: "  meshguard tokens revoked\n  meshguard tokens revoked --json",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			all := []api.Revocation{}
			for after := ""; ; {
				page, err := c.ListRevokedTokens(cmd.Context(), after, 1000)
				if err != nil {
					return a.apiErr(err)
				}
				all = append(all, page.Tokens...)
				if page.Next == "" || page.Next == after || len(page.Tokens) == 0 {
					break
				}
				after = page.Next
			}
			if a.g.json {
				return a.printJSON(all)
			}
			if len(all) == 0 {
				a.say("no revoked tokens")
				return nil
			}
			rows := make([][]string, len(all))
			for i, r := range all {
				rows[i] = []string{r.JTI, r.AgentID, r.ExpiresAt.Format(time.RFC3339), r.RevokedAt.Format(time.RFC3339), orDash(r.Reason)}
			}
			a.table([]string{"JTI", "AGENT", "EXPIRES", "REVOKED", "REASON"}, rows)
			return nil
		}),
	}
}
