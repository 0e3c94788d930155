package cli

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/filterconfig"
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
		Use:   "token",
		Short: "Print the wasm filter's credential (derived from the admin token; it opens /v1/filter/* only)",
		Args:  exactArgs(0),
		RunE: runE(func(*cobra.Command, []string) error {
			if _, err := a.adminClient(); err != nil {
				return err
			}
			a.say("%s", filterconfig.FilterToken(strings.TrimSpace(a.adminToken())))
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
