package charttest

import (
	"os"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestReadmeListsEveryValue: every top-level value and every key under it
// that values.yaml sets appears in the README's values table.
func TestReadmeListsEveryValue(t *testing.T) {
	data, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(chartDir + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	// A row lists a key whole, or after a first one as `.last`.
	for _, key := range valueKeys("", vals) {
		if strings.HasSuffix(key, ".") {
			if !strings.Contains(string(readme), "`"+key) {
				missing = append(missing, key)
			}
			continue
		}
		last := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(string(readme), "`"+key+"`") && !strings.Contains(string(readme), "`."+last+"`") {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README.md's values table lacks %v", missing)
	}
}

// valueKeys lists the keys of vals, two levels deep (deeper maps are data:
// selectors; so is resources).
func valueKeys(prefix string, vals map[string]any) []string {
	var out []string
	for k, v := range vals {
		if m, ok := v.(map[string]any); ok && prefix == "" && k != "resources" && len(m) > 0 {
			out = append(out, valueKeys(k+".", m)...)
			continue
		}
		if m, ok := v.(map[string]any); ok && prefix != "" && len(m) > 0 {
			k += "." // a group of keys: its row lists them as `key.sub`
		}
		out = append(out, prefix+k)
	}
	return out
}
