package cli

import (
	"bytes"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/proxyauth"
)

// filterCmd is `meshguard filter`: what an operator needs to deploy the
// wasm filter by hand (an Istio WasmPlugin): its credential, and the
// configuration it will fetch.
func (a *app) filterCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "filter",
		Short: "The wasm filter: its credential and its configuration",
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "token NAME",
		Short: "Make a new credential for the proxy NAME: the credential for the proxy, its digest for PROXIES_FILE",
		Long: "Makes a random credential for one proxy and prints it with the PROXIES_FILE entry that lets it in.\n" +
			"The proxy sends it on its xDS stream (Envoy's initial_metadata: authorization: Bearer …) or, in a\n" +
			"hand-deployed wasm filter (an Istio WasmPlugin), as source.token. MeshGuard keeps only the digest;\n" +
			"remove the entry to revoke the credential, list two digests while rotating.",
		Args: exactArgs(1),
		RunE: runE(func(_ *cobra.Command, args []string) error {
			name := args[0]
			if err := proxyauth.CheckName(name); err != nil {
				return usageErr("NAME: %v", err)
			}
			tok := proxyauth.NewCredential()
			a.say("credential (give it to the proxy, shown once): %s", tok)
			a.say("PROXIES_FILE entry:\n  - name: %s\n    tokens: [\"%s\"]", name, proxyauth.Digest(tok))
			return nil
		}),
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "config",
		Short: "Print the configuration the wasm filter gets (agents, keys, policies, routes, services)",
		Args:  exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			raw, err := c.FilterConfig(cmd.Context())
			if err != nil {
				return a.apiErr(err)
			}
			var out bytes.Buffer
			if err := json.Indent(&out, raw, "", "  "); err != nil {
				return err
			}
			a.say("%s", out.String())
			return nil
		}),
	})
	return cmd
}
