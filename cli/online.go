package cli

import (
	"encoding/csv"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/meshguard/meshguard/client"
)

// The online commands talk to a running MeshGuard through package client:
// --gateway (MESHGUARD_GATEWAY_URL) says where, --admin-token
// (MESHGUARD_ADMIN_TOKEN) carries the admin token. Their failures map to
// the CLI's exit codes (docs/cli.md) with client.ExitCode.

// adminClient returns a client of the admin API. Without an admin token it
// fails with exit 3 before any request is made; a malformed --gateway is a
// usage error.
func (a *app) adminClient() (*client.Client, error) {
	tok := strings.TrimSpace(a.adminToken())
	if tok == "" {
		return nil, &ExitError{Code: ExitAuth, Err: errors.New("no admin token: set MESHGUARD_ADMIN_TOKEN or pass --admin-token\n" +
			"(the server's ADMIN_TOKEN; unless that is set, `meshguard serve` prints the token on its first start and keeps it\n" +
			"in DATA_DIR/admin-token: export MESHGUARD_ADMIN_TOKEN=$(cat ./data/admin-token))")}
	}
	c, err := client.New(client.Config{BaseURL: a.gateway(), AdminToken: tok, UserAgent: "meshguard-cli/" + a.Version})
	if err != nil {
		return nil, usageErr("--gateway (MESHGUARD_GATEWAY_URL) %q: expected http(s)://host[:port] without credentials, such as %s", shownURL(a.gateway()), client.DefaultBaseURL)
	}
	return c, nil
}

// shownURL is a --gateway for messages: its password (refused, but it may
// have been given) masked; not shown at all if it does not parse, as it
// may hold one.
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	return u.Redacted()
}

// apiErr turns an error of package client into an *ExitError with the
// CLI's exit code and a message that says what to do. The located errors
// of a refused policy or tests file go to stderr, one ✗ line each.
func (a *app) apiErr(err error) error {
	if err == nil {
		return nil
	}
	code := client.ExitCode(err)
	if errors.Is(err, client.ErrNetwork) {
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		return &ExitError{Code: code, Err: fmt.Errorf("cannot reach MeshGuard at %s: %v\n"+
			"is it running? start it with `meshguard serve`, or point --gateway (MESHGUARD_GATEWAY_URL) at it", shownURL(a.gateway()), cause)}
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return &ExitError{Code: code, Err: err}
	}
	for _, le := range ae.Errors {
		fmt.Fprintf(a.Stderr, "✗ %s\n", le)
	}
	msg := ae.Message
	if msg == "" {
		msg = ae.Code
	}
	if code == ExitAuth {
		return &ExitError{Code: code, Err: fmt.Errorf("the server at %s refused the admin token: %s\n"+
			"set MESHGUARD_ADMIN_TOKEN or pass --admin-token with the server's admin token (its ADMIN_TOKEN, or the one it generated into DATA_DIR/admin-token)",
			shownURL(a.gateway()), msg)}
	}
	if ae.Reason != "" && ae.Reason != ae.Code {
		msg += " (" + ae.Reason + ")"
	}
	return &ExitError{Code: code, Err: fmt.Errorf("%s [%d %s]", msg, ae.Status, ae.Code)}
}

// --- token files ---------------------------------------------------------

// secretFile receives a token: a temporary file (0600) beside the target,
// made before the request so that a path that cannot be written fails
// before an agent is created, then renamed over the target.
type secretFile struct {
	path string
	tmp  *os.File
}

func newSecretFile(path string) (*secretFile, error) {
	if path == "" {
		return nil, usageErr("--output: empty path")
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, usageErr("--output: %s exists and is not a regular file", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, usageErr("--output: %v", err)
	}
	return &secretFile{path: path, tmp: tmp}, nil
}

// commit writes the token and puts the file in place, mode 0600.
func (s *secretFile) commit(token string) error {
	err := s.tmp.Chmod(0o600)
	if err == nil {
		_, err = s.tmp.WriteString(token)
	}
	if err == nil {
		err = s.tmp.Sync()
	}
	if cerr := s.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.tmp.Name(), s.path)
	}
	if err != nil {
		_ = os.Remove(s.tmp.Name())
		return fmt.Errorf("writing the token to %s: %w", s.path, err)
	}
	return nil
}

// abort removes the temporary file.
func (s *secretFile) abort() {
	if s == nil {
		return
	}
	_ = s.tmp.Close()
	_ = os.Remove(s.tmp.Name())
}

// --- list and map flags --------------------------------------------------

// csvFields splits a flag value as one CSV record, so a value may hold a
// comma when quoted.
func csvFields(s, expected string) ([]string, error) {
	rec, err := csv.NewReader(strings.NewReader(s)).Read()
	if err != nil {
		return nil, fmt.Errorf("expected %s: %w", expected, err)
	}
	return rec, nil
}

// listValue is a comma-separated list flag (--tags a,b): entries are
// trimmed, an empty entry is an error, and an empty value ("") is the empty
// list, which clears the field in `agent update`. Repeating the flag adds.
type listValue struct {
	list *[]string
	set  bool
}

func (v *listValue) String() string {
	if v.list == nil {
		return ""
	}
	return strings.Join(*v.list, ",")
}

func (v *listValue) Type() string { return "strings" }

func (v *listValue) Set(s string) error {
	if !v.set {
		*v.list = []string{}
		v.set = true
	}
	if s == "" {
		return nil
	}
	rec, err := csvFields(s, "a comma-separated list")
	if err != nil {
		return err
	}
	for _, e := range rec {
		e = strings.TrimSpace(e)
		if e == "" {
			return fmt.Errorf("%q: empty entry in a comma-separated list", s)
		}
		*v.list = append(*v.list, e)
	}
	return nil
}

// mapValue is --metadata k=v,k2=v2: a key may appear once; an empty value
// ("") is the empty map, which clears the field in `agent update`.
// Repeating the flag adds.
type mapValue struct {
	m   *map[string]string
	set bool
}

func (v *mapValue) String() string {
	if v.m == nil || len(*v.m) == 0 {
		return ""
	}
	pairs := make([]string, 0, len(*v.m))
	for k, val := range *v.m {
		pairs = append(pairs, k+"="+val)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func (v *mapValue) Type() string { return "key=value,..." }

func (v *mapValue) Set(s string) error {
	if !v.set {
		*v.m = map[string]string{}
		v.set = true
	}
	if s == "" {
		return nil
	}
	rec, err := csvFields(s, "key=value pairs separated by commas")
	if err != nil {
		return err
	}
	for _, pair := range rec {
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		switch {
		case !ok || k == "":
			return fmt.Errorf("%q: expected key=value", pair)
		case hasKey(*v.m, k):
			return fmt.Errorf("key %q given twice", k)
		}
		(*v.m)[k] = val
	}
	return nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// --- tables --------------------------------------------------------------

// table prints rows under a header, in aligned columns, unless --quiet.
func (a *app) table(header []string, rows [][]string) {
	if a.g.quiet {
		return
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// orDash shows an empty cell as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// note prints a line to stderr unless --quiet: the human summary of a
// command whose stdout is for a script (a token).
func (a *app) note(format string, args ...any) {
	if !a.g.quiet {
		fmt.Fprintf(a.Stderr, format+"\n", args...)
	}
}
