package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) keysCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "keys",
		Short: "Manage the keys that sign agent tokens",
	})
	cmd.AddCommand(a.keysRotateCmd())
	return cmd
}

// signingAlgs are the algorithms a signing key may use, by lower-case name.
var signingAlgs = map[string]string{"eddsa": "EdDSA", "es256": "ES256"}

func (a *app) keysRotateCmd() *cobra.Command {
	var alg string
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new signing key current",
		Long: "Makes a new signing key current on every replica. The old key stops signing but keeps\n" +
			"verifying the tokens it signed until they expire, so it stays in the JWKS. --alg chooses\n" +
			"the new key's algorithm (default: the current key's).",
		Example: "  meshguard keys rotate\n  meshguard keys rotate --alg ES256",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if alg != "" {
				canon, ok := signingAlgs[strings.ToLower(alg)]
				if !ok {
					return usageErr("--alg: %q: expected EdDSA or ES256", alg)
				}
				alg = canon
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			k, err := c.RotateKeys(cmd.Context(), alg)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(k)
			}
			a.say("✓ new signing key %s (%s) is current; tokens signed by the previous key stay valid until they expire", k.KID, k.Alg)
			return nil
		}),
	}
	cmd.Flags().StringVar(&alg, "alg", "", "algorithm of the new key: EdDSA or ES256 (default: the current key's)")
	return cmd
}
