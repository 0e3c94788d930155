package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/catalog"
)

func (a *app) serviceCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "service",
		Short: "Manage the service catalogue the xDS server configures Envoys from",
	})
	cmd.AddCommand(a.serviceListCmd(), a.serviceShowCmd(), a.serviceApplyCmd(), a.serviceDeleteCmd())
	return cmd
}

func (a *app) serviceListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the services: SERVICES_FILE's and those applied here",
		Args:  exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			entries, err := c.ListServices(cmd.Context())
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(entries)
			}
			rows := make([][]string, 0, len(entries))
			for _, e := range entries {
				rows = append(rows, []string{e.Name, strings.Join(e.Hosts, ","), strconv.Itoa(e.Port),
					strconv.Itoa(len(e.Endpoints)), strconv.Itoa(len(e.Routes)), orDash(e.Agent), e.MinTier.String(), string(e.Source)})
			}
			a.table([]string{"NAME", "HOSTS", "PORT", "ENDPOINTS", "ROUTES", "AGENT", "MIN TIER", "SOURCE"}, rows)
			return nil
		}),
	}
}

func (a *app) serviceShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show one service",
		Long:    "Prints the service as \"key: value\" lines, one route a line; --json prints it as JSON.",
		Example: "  meshguard service show researcher\n  meshguard service show researcher --json",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			e, err := c.GetService(cmd.Context(), args[0])
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(e)
			}
			a.showService(e)
			return nil
		}),
	}
}

// showService prints a service as agent show prints an agent: aligned
// "key: value" lines, then its routes, one a line.
func (a *app) showService(e api.ServiceEntry) {
	kvs := [][2]string{
		{"name", e.Name},
		{"hosts", orDash(strings.Join(e.Hosts, ", "))},
		{"port", strconv.Itoa(e.Port)},
		{"endpoints", orDash(strings.Join(e.Endpoints, ", "))},
		{"agent", orDash(e.Agent)},
		{"min tier", e.MinTier.String()},
		{"source", e.Source},
	}
	if len(e.Routes) == 0 {
		kvs = append(kvs, [2]string{"routes", "-"})
	}
	for i, r := range e.Routes {
		key := ""
		if i == 0 {
			key = "routes"
		}
		method := r.Method
		if method == "" {
			method = "*"
		}
		kvs = append(kvs, [2]string{key, fmt.Sprintf("%s %s → %s", method, r.Path, r.Action)})
	}
	a.keyValues(kvs)
}

func (a *app) serviceApplyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE",
		Short: "Add or replace the services of a catalogue file (services: [...])",
		Long: "Reads FILE as SERVICES_FILE is read, checks it, and puts each service through the admin API,\n" +
			"in order. A service SERVICES_FILE defines is refused: edit the file instead.",
		Example: "  meshguard service apply examples/services.yaml",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			cat, err := catalog.Parse(args[0], data)
			var list catalog.ErrorList
			switch {
			case errors.As(err, &list):
				// Every problem, one a line, as policy validate prints them.
				for _, e := range list {
					fmt.Fprintf(a.Stderr, "✗ %v\n", e)
				}
				return usageErr("%s in %s; nothing was applied", count(len(list), "error"), args[0])
			case err != nil:
				return usageErr("%v", err)
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			for _, s := range cat.Services {
				if _, err := c.PutService(cmd.Context(), s.API()); err != nil {
					return a.apiErr(fmt.Errorf("service %s: %w", s.Name, err))
				}
				a.say("✓ service %s applied", s.Name)
			}
			return nil
		}),
	}
}

func (a *app) serviceDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Remove a service applied through the API",
		Args:  exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			if err := c.DeleteService(cmd.Context(), args[0]); err != nil {
				return a.apiErr(err)
			}
			a.say("✓ service %s deleted", args[0])
			return nil
		}),
	}
}
