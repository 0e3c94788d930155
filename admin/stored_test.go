package admin

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/policy"
)

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each document's text
	}{
		{"one", "name: a\n", []string{"name: a\n"}},
		{"no final newline", "name: a", []string{"name: a"}},
		{"two", "name: a\n---\nname: b\n", []string{"name: a\n", "---\nname: b\n"}},
		{"leading marker and comments", "# head\n---\n# a\nname: a\n---\n# b\nname: b\n# tail\n",
			[]string{"# head\n---\n# a\nname: a\n", "---\n# b\nname: b\n# tail\n"}},
		{"content on the marker line", "--- {name: a}\n--- {name: b}\n", []string{"--- {name: a}\n", "--- {name: b}\n"}},
		{"end markers", "name: a\n...\n---\nname: b\n...\n", []string{"name: a\n...\n", "---\nname: b\n...\n"}},
		{"directive", "%YAML 1.1\n---\nname: a\n---\nname: b\n", []string{"%YAML 1.1\n---\nname: a\n", "---\nname: b\n"}},
		{"CRLF", "name: a\r\n---\r\nname: b\r\n", []string{"name: a\r\n", "---\r\nname: b\r\n"}},
		{"empty documents", "---\n---\nname: a\n---\n", []string{"---\n---\nname: a\n---\n"}},
		{"indented dashes in a block scalar", "name: a\ndescription: |\n  one\n  ---\n  two\n---\nname: b\n",
			[]string{"name: a\ndescription: |\n  one\n  ---\n  two\n", "---\nname: b\n"}},
		{"a marker-like key", "name: a\ndescription: \"---x\"\n---x: 1\n", nil}, // not a policy: the parse fails first
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := policy.Parse("f.yaml", []byte(tc.in))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("parsed: %v", ps)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			docs, err := splitDocuments("f.yaml", []byte(tc.in), ps)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, d := range docs {
				got = append(got, d.yaml)
				if d.name != ps[i].Name || d.line != ps[i].Source.Line || d.file != "f.yaml" {
					t.Errorf("document %d: %+v", i, d)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if strings.Join(got, "") != tc.in {
				t.Fatal("the pieces do not add up to the input")
			}
		})
	}
}
