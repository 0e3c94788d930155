package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshguard/meshguard/config"
)

// helpSecrets is an environment in which every variable the CLI or the
// server reads holds a value that must never be printed: the admin token,
// the JWT secret, a database URL with a password, the alert secrets and
// the SMTP password among them. It maps each variable to what must not
// appear (for a URL, its password).
func helpSecrets() map[string]string {
	env := map[string]string{
		"MESHGUARD_ADMIN_TOKEN": "cli-admin-token-3f9e1c7a5b",
		"MESHGUARD_GATEWAY_URL": "http://ops:gateway-password-8c2d@meshguard.internal:3100",
	}
	for _, f := range config.Flags() {
		env[f.Env] = "secret-of-" + f.Env + "-5e7a"
	}
	env["DATABASE_URL"] = "postgres://meshguard:db-password-4e2b@db.internal:5432/meshguard"
	env["ALERT_SLACK_WEBHOOK"] = "https://hooks.example.com/services/T0/B0/slack-token-91ac"
	env["ALERT_WEBHOOK_URL"] = "https://alerts.example.com/in?token=webhook-url-token-77d0"
	return env
}

// mustNotShow is the part of an environment value that gives the secret
// away.
func mustNotShow(v string) string {
	for _, marker := range []string{"gateway-password-8c2d", "db-password-4e2b", "slack-token-91ac", "webhook-url-token-77d0"} {
		if strings.Contains(v, marker) {
			return marker
		}
	}
	return v
}

// commandPaths lists every command of the tree, cobra's help and
// completion commands included, as the arguments that name it.
func commandPaths(root *cobra.Command) [][]string {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(root, nil)
	return out
}

// TestHelpShowsNoSecrets: with every secret in the environment, no
// command's help shows any of them — neither `<command> --help` nor `help
// <command>`. (--admin-token used to show MESHGUARD_ADMIN_TOKEN as its
// default.)
func TestHelpShowsNoSecrets(t *testing.T) {
	env := helpSecrets()
	for k, v := range env {
		t.Setenv(k, v) // in case anything reads the process environment
	}
	opts := func(out, errb *bytes.Buffer) Options {
		return Options{Version: "v0.0.0-test", Stdout: out, Stderr: errb, Getenv: func(k string) string { return env[k] }}
	}
	paths := commandPaths(New(opts(&bytes.Buffer{}, &bytes.Buffer{})))
	if len(paths) < 30 {
		t.Fatalf("only %d commands found: the walk is broken", len(paths))
	}
	for _, path := range paths {
		for _, args := range [][]string{append(append([]string(nil), path...), "--help"), append([]string{"help"}, path...)} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var out, errb bytes.Buffer
				if code := Main(context.Background(), args, opts(&out, &errb)); code != ExitOK {
					t.Fatalf("exit %d: %s", code, errb.String())
				}
				if !strings.Contains(out.String(), "Usage:") {
					t.Fatalf("no help printed:\n%s", out.String())
				}
				shown := out.String() + errb.String()
				for k, v := range env {
					if s := mustNotShow(v); strings.Contains(shown, s) {
						t.Errorf("the help shows %s's value %q", k, s)
					}
				}
			})
		}
	}
}

// TestGatewayPasswordNotInErrors: a --gateway with credentials is refused
// without its password in the message.
func TestGatewayPasswordNotInErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"--admin-token", "0123456789abcdef", "--gateway", "http://ops:gw-pass-1b2c@h:1", "agent", "list"}, nil},
		{"environment", []string{"agent", "list"}, map[string]string{"MESHGUARD_ADMIN_TOKEN": "0123456789abcdef", "MESHGUARD_GATEWAY_URL": "http://ops:gw-pass-1b2c@h:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), tc.args, Options{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return tc.env[k] }})
			msg := fmt.Sprint(out.String(), errb.String())
			if code != ExitUsage || strings.Contains(msg, "gw-pass-1b2c") || !strings.Contains(msg, "without credentials") {
				t.Fatalf("exit %d, output:\n%s", code, msg)
			}
		})
	}
}

// TestFlagUsagesAreWhole: no flag of any command has a usage that stops
// mid-sentence (serve's --config once read "… and routes:"), and `serve
// --help` points at the page that lists every setting, which exists.
func TestFlagUsagesAreWhole(t *testing.T) {
	root := New(Options{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				u := strings.TrimSpace(f.Usage)
				if u == "" || strings.HasSuffix(u, ":") || strings.HasSuffix(u, ",") || strings.Count(u, "(") != strings.Count(u, ")") {
					t.Errorf("%s --%s: usage %q is cut off", c.CommandPath(), f.Name, f.Usage)
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)

	const page = "docs/configuration.md"
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"serve", "--help"}, Options{Stdout: &out, Stderr: &out}); code != ExitOK {
		t.Fatalf("serve --help: exit %d: %s", code, out.String())
	}
	if !strings.Contains(out.String(), page) {
		t.Errorf("serve --help does not name %s:\n%s", page, out.String())
	}
	if _, err := os.Stat(filepath.Join("..", page)); err != nil {
		t.Errorf("serve --help names %s: %v", page, err)
	}
}
