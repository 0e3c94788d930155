package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

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
	var addTo string
	token := &cobra.Command{
		Use:   "token NAME",
		Short: "Make a new credential for the proxy NAME: the credential for the proxy, its digest for PROXIES_FILE",
		Long: "Makes a random credential for one proxy and prints it with the PROXIES_FILE entry that lets it in.\n" +
			"The proxy sends it on its xDS stream (Envoy's initial_metadata: authorization: Bearer …) or, in a\n" +
			"hand-deployed wasm filter (an Istio WasmPlugin), as source.token. MeshGuard keeps only the digest;\n" +
			"remove the entry to revoke the credential, list two digests while rotating.\n" +
			"With --add-to FILE the entry is added to that proxies file (created if missing) and only the\n" +
			"credential is printed.",
		Args: exactArgs(1),
		RunE: runE(func(_ *cobra.Command, args []string) error {
			name := args[0]
			if err := proxyauth.CheckName(name); err != nil {
				return usageErr("NAME: %v", err)
			}
			tok := proxyauth.NewCredential()
			entry := fmt.Sprintf("  - name: %s\n    tokens: [\"%s\"]\n", name, proxyauth.Digest(tok))
			if addTo != "" {
				if err := addProxy(addTo, entry); err != nil {
					return err
				}
				fmt.Fprintln(a.Stdout, tok) // even with --quiet: it is shown once
				return nil
			}
			a.say("credential (give it to the proxy, shown once): %s", tok)
			a.say("PROXIES_FILE entry:\n%s", strings.TrimSuffix(entry, "\n"))
			return nil
		}),
	}
	token.Flags().StringVar(&addTo, "add-to", "", "add the entry to this PROXIES_FILE (created if missing) and print only the credential")
	cmd.AddCommand(token)
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

// addProxy adds entry to the proxies file at path, creating it if missing.
// The file must parse before and after, so a typo is caught here rather
// than when serve reloads it (and keeps the last good list).
func addProxy(path, entry string) error {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = []byte("proxies:\n")
	case err != nil:
		return fmt.Errorf("--add-to: %w", err)
	}
	if _, err := proxyauth.Parse(old); err != nil {
		return usageErr("--add-to %s: %v", path, err)
	}
	text := string(old)
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	text += entry
	if _, err := proxyauth.Parse([]byte(text)); err != nil {
		return usageErr("--add-to %s: %v", path, err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("--add-to: %w", err)
	}
	return nil
}
