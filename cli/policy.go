package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/policy"
)

func (a *app) policyCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "policy",
		Short: "Manage, validate and test policies",
		Long: "list, show, apply and delete manage the policies of a running MeshGuard through its\n" +
			"admin API (--gateway, --admin-token); validate checks files offline; test runs test\n" +
			"cases against the server, or offline with --policies.",
	})
	cmd.AddCommand(a.policyListCmd(), a.policyShowCmd(), a.policyApplyCmd(), a.policyDeleteCmd(),
		a.policyValidateCmd(), a.policyTestCmd(), a.policyReplayCmd(), a.policyShadowCmd())
	return cmd
}

// validateReport is the --json shape of `policy validate`.
type validateReport struct {
	Valid    bool            `json:"valid"`
	Revision string          `json:"revision,omitempty"`
	Policies []policySummary `json:"policies"`
	Errors   []errorJSON     `json:"errors"`
}

type policySummary struct {
	Name  string `json:"name"`
	File  string `json:"file"`
	Line  int    `json:"line"`
	Rules int    `json:"rules"`
	Mode  string `json:"mode,omitempty"` // shadow, or "" for enforce
}

type errorJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (a *app) policyValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE|DIR",
		Short: "Check policy files offline: syntax, every field, and the set as a whole",
		Long: "Reads a policy file, or every *.yaml/*.yml file under a directory, and reports every\n" +
			"problem with its file, line and field. Exit 0 when valid, 2 when not.",
		Args: exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			set, err := loadPolicies(cmd, args[0])
			rep := validateReport{Valid: err == nil, Policies: []policySummary{}, Errors: []errorJSON{}}
			var list policy.ErrorList
			if err != nil {
				if !errors.As(err, &list) {
					return err
				}
				for _, e := range list {
					rep.Errors = append(rep.Errors, errorJSON{File: e.File, Line: e.Line, Field: e.Field, Message: e.Msg})
				}
			} else {
				rep.Revision = set.Revision()
				for _, p := range set.Policies() {
					rep.Policies = append(rep.Policies, policySummary{Name: p.Name, File: p.Source.File, Line: p.Source.Line, Rules: len(p.Rules), Mode: p.Mode})
				}
			}
			if a.g.json {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else if rep.Valid {
				for _, p := range rep.Policies {
					shadow := ""
					if p.Mode == policy.ModeShadow {
						shadow = ", shadow"
					}
					a.say("✓ %s (%s:%d, %s%s)", p.Name, p.File, p.Line, count(p.Rules, "rule"), shadow)
				}
				a.say("%s valid, revision %s", count(len(rep.Policies), "policy"), rep.Revision)
			} else {
				// Errors go to stderr even with --quiet: they are the answer.
				for _, e := range list {
					fmt.Fprintf(a.Stderr, "✗ %v\n", e)
				}
				fmt.Fprintln(a.Stderr, count(len(rep.Errors), "error"))
			}
			if !rep.Valid {
				return &ExitError{Code: ExitUsage}
			}
			return nil
		}),
	}
}

// loadPolicies loads a file or a directory into a compiled set. Bad policy
// input is returned as a policy.ErrorList; an unreadable path is a usage
// error (exit 2) since the user named it.
func loadPolicies(cmd *cobra.Command, path string) (*policy.Set, error) {
	src, err := policy.Path(path)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	set, err := policy.Load(cmd.Context(), src)
	var list policy.ErrorList
	switch {
	case err != nil && !errors.As(err, &list):
		return nil, usageErr("%v", err)
	case err == nil && set.Len() == 0:
		// An empty set denies everything; as a command-line answer it is
		// almost always a wrong path, so say so instead of "0 valid".
		return nil, policy.ErrorList{{File: path, Msg: "no policies found (expected *.yaml or *.yml files holding policy documents)"}}
	}
	return set, err
}

// readInput reads a file named on the command line (bounded, regular files
// only); failures are usage errors.
func readInput(flag, path string) ([]byte, error) {
	if path == "" {
		return nil, usageErr("%s: empty path", flag)
	}
	data, err := policy.ReadFile(path)
	if err != nil {
		return nil, usageErr("%s: %v", flag, err)
	}
	return data, nil
}
