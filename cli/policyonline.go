package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/policy"
)

// Limits of one `policy apply`, those of POST /admin/policies
// (docs/api.md): the request body holds at most one policy file's worth of
// bytes, in at most 1,000 files whose labels are at most 256 characters.
const (
	maxApplyBytes    = policy.MaxFileBytes
	maxApplyFiles    = 1000
	maxApplyLabelLen = 256
)

func (a *app) policyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the policies in force on the server: NAME, VERSION, RULES, SOURCE",
		Long: "Lists the policies in force, in name order: those of the files under the server's\n" +
			"POLICIES_DIR (SOURCE is the file and line) and those stored through the API (stored).\n" +
			"When the server's last reload failed, the errors go to stderr: the set shown is the last\n" +
			"good one, still in force.",
		Example: "  meshguard policy list\n  meshguard policy list --json",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			list, err := c.ListPolicies(cmd.Context())
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(list)
			}
			if len(list.Policies) == 0 {
				a.say("no policies in force (every request is denied)")
			} else {
				rows := make([][]string, len(list.Policies))
				for i, p := range list.Policies {
					rows[i] = []string{p.Name, orDash(p.Version), strconv.Itoa(p.Rules), policySource(p)}
				}
				a.table([]string{"NAME", "VERSION", "RULES", "SOURCE"}, rows)
				a.say("%s, revision %s", count(len(list.Policies), "policy"), list.Revision)
			}
			a.loadErrors(list.LoadErrors, "the server's last policy reload failed; the set shown is the last good one, still in force")
			return nil
		}),
	}
}

// policySource is the SOURCE column: "stored", or the file and line.
func policySource(p api.PolicyInfo) string {
	if p.Source == api.SourceStored {
		return api.SourceStored
	}
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return orDash(p.File)
}

// loadErrors prints located errors the server reported beside a success,
// and what they mean.
func (a *app) loadErrors(errs []api.LocatedError, meaning string) {
	if len(errs) == 0 {
		return
	}
	for _, e := range errs {
		fmt.Fprintf(a.Stderr, "✗ %s\n", e)
	}
	if meaning != "" {
		fmt.Fprintf(a.Stderr, "warning: %s\n", meaning)
	}
}

func (a *app) policyShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Print a policy: a stored policy's YAML as applied, otherwise its JSON form",
		Long: "Prints a policy stored through the API as the YAML document that was applied, comments\n" +
			"included, so `meshguard policy show NAME > NAME.yaml` round-trips. A policy defined in a\n" +
			"file under the server's POLICIES_DIR is printed in its JSON form (the YAML keys and\n" +
			"shapes, itself a valid policy document); read the file for its YAML. --json prints\n" +
			"{name, version, rules, source, file, line, inForce, policy, yaml, createdAt, updatedAt}.",
		Example: "  meshguard policy show support > support.yaml\n  meshguard policy show researchers --json",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			d, err := c.GetPolicy(cmd.Context(), args[0])
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				return a.printJSON(d)
			}
			if d.Source == api.SourceStored && !d.InForce {
				a.note("warning: stored policy %q is not in force: the server's last policy reload failed (see `meshguard policy list`)", d.Name)
			}
			if d.YAML != "" {
				if !a.g.quiet {
					fmt.Fprint(a.Stdout, d.YAML)
					if !strings.HasSuffix(d.YAML, "\n") {
						fmt.Fprintln(a.Stdout)
					}
				}
				return nil
			}
			a.note("# policy %q is defined in %s; its JSON form:", d.Name, policySource(d.PolicyInfo))
			if len(d.Policy) == 0 {
				return fmt.Errorf("the server sent no content for policy %q", d.Name)
			}
			var buf bytes.Buffer
			if err := json.Indent(&buf, d.Policy, "", "  "); err != nil {
				return fmt.Errorf("the server sent malformed JSON for policy %q: %w", d.Name, err)
			}
			a.say("%s", buf.String())
			return nil
		}),
	}
}

func (a *app) policyApplyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE|DIR",
		Short: "Store policies on the server: a file, or every *.yaml/*.yml under a directory, as one change",
		Long: "Sends a file, or every *.yaml/*.yml file under a directory (names starting with \".\"\n" +
			"skipped), to the server as one change. The server checks them all, together with the\n" +
			"policies in force, before it stores anything: on any error nothing is stored, the set in\n" +
			"force is unchanged, and every error is printed with its file, line and field (exit 2; a\n" +
			"clash with a policy file on the server is exit 1). Policies stored under the same name\n" +
			"are replaced. At most 1,000 files and 4 MiB per apply.",
		Example: "  meshguard policy apply policies/\n  meshguard policy apply support.yaml --json",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			files, err := readPolicyFiles(args[0])
			if err != nil {
				return a.badInput(err)
			}
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			res, err := c.ApplyPolicies(cmd.Context(), files...)
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else {
				for _, p := range res.Applied {
					how := "updated"
					if p.Created {
						how = "created"
					}
					a.say("✓ %s (%s, %s)", p.Name, how, count(p.Rules, "rule"))
				}
				a.say("%s applied from %s, revision %s", count(len(res.Applied), "policy"), count(len(files), "file"), res.Revision)
			}
			if !res.InForce {
				a.loadErrors(res.Errors, "")
				return &ExitError{Code: ExitFailure, Err: errors.New("the policies were stored, but the server could not reload its policy set (see the errors above); the previous set stays in force")}
			}
			return nil
		}),
	}
}

// readPolicyFiles reads the file, or the *.yaml/*.yml files under the
// directory, that `policy apply` sends. Unreadable or oversized input is a
// usage error (exit 2).
func readPolicyFiles(path string) ([]api.PolicyFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	paths := []string{path}
	if st.IsDir() {
		if paths, err = policy.YAMLFiles(path); err != nil {
			return nil, usageErr("%v", err)
		}
		if len(paths) == 0 {
			return nil, usageErr("%s: no *.yaml or *.yml files", path)
		}
		if len(paths) > maxApplyFiles {
			return nil, usageErr("%s: %d files; one apply takes at most %d (apply the directory in parts)", path, len(paths), maxApplyFiles)
		}
	}
	files := make([]api.PolicyFile, 0, len(paths))
	total := 0
	for _, p := range paths {
		data, err := policy.ReadFile(p)
		if err != nil {
			var list policy.ErrorList
			if errors.As(err, &list) {
				return nil, list
			}
			return nil, usageErr("%v", err)
		}
		if !utf8.Valid(data) {
			return nil, policy.ErrorList{{File: p, Msg: "not valid UTF-8"}}
		}
		total += len(data)
		if total > maxApplyBytes {
			return nil, usageErr("%s: the files hold more than %d bytes; one apply takes at most that (apply them in parts)", path, maxApplyBytes)
		}
		files = append(files, api.PolicyFile{Name: applyLabel(path, p), YAML: string(data)})
	}
	return files, nil
}

// applyLabel is the name a file goes by in the server's errors: its path as
// the user would write it, or, when that is too long, its path relative to
// the directory applied, or its base name.
func applyLabel(root, p string) string {
	for _, l := range []string{p, relOr(root, p), filepath.Base(p)} {
		if len(l) <= maxApplyLabelLen && utf8.ValidString(l) && !strings.HasPrefix(l, "stored:") {
			return l
		}
	}
	return "file"
}

func relOr(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}

func (a *app) policyDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy stored through the API",
		Long: "Deletes a stored policy and reloads the set. A policy defined in a file under the\n" +
			"server's POLICIES_DIR cannot be deleted here (exit 1): delete it in the file.",
		Example: "  meshguard policy delete support",
		Args:    exactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			res, err := c.DeletePolicy(cmd.Context(), args[0])
			if err != nil {
				return a.apiErr(err)
			}
			if a.g.json {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else {
				a.say("✓ deleted policy %s, revision %s", res.Deleted, res.Revision)
			}
			if !res.InForce {
				a.loadErrors(res.Errors, "")
				return &ExitError{Code: ExitFailure, Err: errors.New("the policy was deleted, but the server could not reload its policy set (see the errors above); the previous set stays in force")}
			}
			return nil
		}),
	}
}
