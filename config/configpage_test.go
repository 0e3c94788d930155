package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// configPage is the page that lists every setting of `meshguard serve`.
const configPage = "configuration.md"

// pageRow is one setting's row of docs/configuration.md.
type pageRow struct {
	line                     int
	flag, env, key, def, see string
}

// rowCell is a cell holding one code span; "—" is the empty default.
var (
	rowCell  = regexp.MustCompile("^`([^`]*)`$")
	linkCell = regexp.MustCompile(`^\[[^\]]+\]\(([a-z-]+\.md)(?:#([a-z0-9_-]+))?\)$`)
)

// parseConfigPage reads the rows of the page's tables whose first cell is
// a flag: | `--flag` | `VAR` | `key` | `default` or — | what | [page](page.md#anchor) |.
func parseConfigPage(t *testing.T, text string) []pageRow {
	t.Helper()
	var rows []pageRow
	for i, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.ReplaceAll(line, `\|`, "\x00"), "|"), "|")
		if len(cells) < 6 {
			t.Errorf("%s:%d: want 6 cells (flag, variable, file key, default, what, explained in), got %d", configPage, i+1, len(cells))
			continue
		}
		r := pageRow{line: i + 1, see: strings.TrimSpace(cells[len(cells)-1])}
		for j, dst := range []*string{&r.flag, &r.env, &r.key, &r.def} {
			c := strings.TrimSpace(cells[j])
			if j == 3 && c == "—" {
				continue
			}
			m := rowCell.FindStringSubmatch(c)
			if m == nil {
				t.Errorf("%s:%d: cell %d %q: want one `code span`%s", configPage, r.line, j+1, c, map[bool]string{true: " or —"}[j == 3])
				continue
			}
			*dst = m[1]
		}
		r.flag = strings.TrimPrefix(r.flag, "--")
		rows = append(rows, r)
	}
	return rows
}

// headingAnchors are the anchors GitHub gives a page's headings.
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#"))) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

// wantRow is the row a flag needs, to print when it is missing.
func wantRow(f Flag) string {
	def := "—"
	if f.Default != "" {
		def = "`" + f.Default + "`"
	}
	return fmt.Sprintf("| `--%s` | `%s` | `%s` | %s | %s | [page.md](page.md) |", f.Name, f.Env, fileKey(f.Env), def, f.Usage)
}

// TestConfigurationPageListsEverySetting: docs/configuration.md has one
// row for each flag of Flags() and none for a setting that does not
// exist; each row's variable, file key and default are the code's, and
// the page it links to exists, has the linked heading, and names the
// variable. A setting added, renamed or re-defaulted without the page
// fails here.
func TestConfigurationPageListsEverySetting(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", configPage))
	if err != nil {
		t.Fatal(err)
	}
	rows := parseConfigPage(t, string(data))
	byFlag := map[string]pageRow{}
	for _, r := range rows {
		if prev, dup := byFlag[r.flag]; dup {
			t.Errorf("%s:%d: --%s has a row already, at line %d", configPage, r.line, r.flag, prev.line)
		}
		byFlag[r.flag] = r
	}
	flags := Flags()
	if len(rows) < len(flags)/2 {
		t.Fatalf("%s: only %d rows read for %d flags: the parser is broken", configPage, len(rows), len(flags))
	}
	exists := map[string]bool{}
	for _, f := range flags {
		exists[f.Name] = true
		r, ok := byFlag[f.Name]
		if !ok {
			t.Errorf("%s has no row for --%s; add:\n%s", configPage, f.Name, wantRow(f))
			continue
		}
		if r.env != f.Env || r.key != fileKey(f.Env) || r.def != f.Default {
			t.Errorf("%s:%d: --%s: row says %s, %s, default %q; the code: %s, %s, default %q",
				configPage, r.line, f.Name, r.env, r.key, r.def, f.Env, fileKey(f.Env), f.Default)
		}
		m := linkCell.FindStringSubmatch(r.see)
		if m == nil || m[1] == configPage {
			t.Errorf("%s:%d: --%s: %q: want a link to the page of docs/ that explains it", configPage, r.line, f.Name, r.see)
			continue
		}
		page, err := os.ReadFile(filepath.Join("..", "docs", m[1]))
		if err != nil {
			t.Errorf("%s:%d: --%s: %v", configPage, r.line, f.Name, err)
			continue
		}
		if m[2] != "" && !headingAnchors(string(page))[m[2]] {
			t.Errorf("%s:%d: --%s: %s has no heading #%s", configPage, r.line, f.Name, m[1], m[2])
		}
		if !regexp.MustCompile("`" + f.Env + "[`=]").Match(page) {
			t.Errorf("%s:%d: --%s: %s does not name %s (as `%s` or `%s=…`)", configPage, r.line, f.Name, m[1], f.Env, f.Env, f.Env)
		}
	}
	for _, r := range rows {
		if !exists[r.flag] {
			t.Errorf("%s:%d: a row for --%s, which is no setting of serve", configPage, r.line, r.flag)
		}
	}
}
