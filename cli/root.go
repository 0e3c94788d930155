// Package cli is the meshguard command line: a cobra command tree whose
// commands parse flags, call the packages that do the work, and print
// results for people (tables, ✓/✗ lines) or machines (--json).
//
// Commands report failure by returning an *ExitError carrying its
// exit code (docs/cli.md); Main turns it into the process status. Nothing here calls
// os.Exit, so every command runs in tests against buffers.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshguard/meshguard/client"
)

// Exit codes (docs/cli.md).
const (
	ExitOK      = 0
	ExitFailure = 1 // an error, or (policy test) a failed case / denied request
	ExitUsage   = 2 // bad arguments or bad input files
	ExitAuth    = 3
	ExitDenied  = 4
	ExitNetwork = 5
)

// ExitError carries an exit code and, optionally, a message for stderr.
// A nil Err means the command already printed what it had to say.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func usageErr(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// Options wires the CLI to its surroundings.
type Options struct {
	// Version, Commit and Date are stamped at build time (cmd/meshguard's
	// ldflags); Date is the commit's date, so a rebuild gives the same binary.
	Version string
	Commit  string
	Date    string
	Stdout  io.Writer
	Stderr  io.Writer
	Getenv  func(string) string
}

// globals are the flags every command accepts (docs/cli.md).
type globals struct {
	gateway    string
	adminToken string
	json       bool
	quiet      bool
}

// app is one invocation: options plus parsed global flags.
type app struct {
	Options
	g  globals
	pf *pflag.FlagSet // the global flags, to tell given from default
}

// adminToken is --admin-token if given, else MESHGUARD_ADMIN_TOKEN.
func (a *app) adminToken() string {
	if a.pf.Changed("admin-token") {
		return a.g.adminToken
	}
	return a.Getenv("MESHGUARD_ADMIN_TOKEN")
}

// gateway is --gateway if given, else MESHGUARD_GATEWAY_URL, else the
// default.
func (a *app) gateway() string {
	if !a.pf.Changed("gateway") {
		if v := a.Getenv("MESHGUARD_GATEWAY_URL"); v != "" {
			return v
		}
	}
	return a.g.gateway
}

// New builds the command tree.
func New(opts Options) *cobra.Command {
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	a := &app{Options: opts}
	root := &cobra.Command{
		Use:           "meshguard",
		Short:         "Governance for AI-agent meshes: identity, policy, delegation, audit",
		Long:          "MeshGuard gives every agent a cryptographic identity and a trust tier, checks every\nagent-to-agent call against YAML policy (including the delegation chain behind it),\nand audits every decision.",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what `meshguard version` prints.
		Version: a.versionText(),
	}
	root.SetVersionTemplate("meshguard {{.Version}}\n")
	root.SetOut(opts.Stdout)
	root.SetErr(opts.Stderr)
	// Flag parse errors are usage errors (exit 2), not generic failures.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: err}
	})
	pf := root.PersistentFlags()
	a.pf = pf
	// The environment is read when a command runs (adminToken, gateway),
	// never made a flag's default: --help prints defaults, and these may
	// hold secrets.
	pf.StringVar(&a.g.gateway, "gateway", client.DefaultBaseURL, "MeshGuard URL (env MESHGUARD_GATEWAY_URL)")
	pf.StringVar(&a.g.adminToken, "admin-token", "", "admin API token (env MESHGUARD_ADMIN_TOKEN)")
	pf.BoolVar(&a.g.json, "json", false, "print JSON instead of text")
	pf.BoolVarP(&a.g.quiet, "quiet", "q", false, "print nothing but errors; the exit code tells the result")

	root.AddCommand(a.versionCmd(), a.serveCmd(), a.agentCmd(), a.policyCmd(), a.keysCmd(), a.auditCmd(), a.serviceCmd(), a.xdsCmd(), a.filterCmd(), a.alertsCmd(), a.tokensCmd(), a.approvalsCmd())
	return root
}

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, opts Options) int {
	root := New(opts)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		// Commands wrap their failures (see runE), so anything else came
		// from cobra itself: an unknown command or a malformed argument.
		ee = &ExitError{Code: ExitUsage, Err: err}
	}
	if ee.Err != nil {
		fmt.Fprintf(opts.Stderr, "error: %v\n", ee.Err)
	}
	return ee.Code
}

// runE adapts a command body: a plain error it returns is a failure (exit 1);
// an *ExitError keeps its code.
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ee *ExitError
		if err != nil && !errors.As(err, &ee) {
			return &ExitError{Code: ExitFailure, Err: err}
		}
		return err
	}
}

// group makes a command that only holds subcommands: with no arguments it
// prints its help; with an unknown subcommand it is a usage error (exit 2),
// not cobra's default of printing help and succeeding.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())}
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	return cmd
}

// exactArgs is cobra.ExactArgs with a usage-typed error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
		}
		return nil
	}
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the MeshGuard version",
		Args:  exactArgs(0),
		RunE: runE(func(*cobra.Command, []string) error {
			if a.g.json {
				return a.printJSON(map[string]string{"version": a.Version, "commit": orUnknown(a.Commit), "date": orUnknown(a.Date)})
			}
			fmt.Fprintf(a.Stdout, "meshguard %s\n", a.versionText())
			return nil
		}),
	}
}

// versionText is what `meshguard version` prints after "meshguard ":
// the version, then the commit and its date it was built from.
func (a *app) versionText() string {
	return fmt.Sprintf("%s (commit %s, %s)", a.Version, orUnknown(a.Commit), orUnknown(a.Date))
}

// orUnknown stands in for a stamp a plain `go build` left empty.
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
