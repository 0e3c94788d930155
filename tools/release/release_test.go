package release

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goreleaser/goreleaser/v2/pkg/config"
)

const root = "../../"

// load reads .goreleaser.yaml as GoReleaser does: strictly, so a mistyped
// key fails here rather than being ignored by a release.
func load(t *testing.T) config.Project {
	t.Helper()
	p, err := config.Load(root + ".goreleaser.yaml")
	if err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	return p
}

func build(t *testing.T, p config.Project, id string) config.Build {
	t.Helper()
	for _, b := range p.Builds {
		if b.ID == id {
			return b
		}
	}
	t.Fatalf(".goreleaser.yaml has no build %q", id)
	return config.Build{}
}

// mainStringVars lists cmd/meshguard's package-level string variables: the
// ones -ldflags -X can set.
func mainStringVars(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, root+"cmd/meshguard/main.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			typed := vs.Type != nil && types(vs.Type) == "string"
			for i, n := range vs.Names {
				untypedString := vs.Type == nil && i < len(vs.Values) && isStringLit(vs.Values[i])
				if typed || untypedString {
					out = append(out, n.Name)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func types(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func isStringLit(e ast.Expr) bool {
	l, ok := e.(*ast.BasicLit)
	return ok && l.Kind == token.STRING
}

var xFlag = regexp.MustCompile(`-X main\.([A-Za-z_][A-Za-z0-9_]*)=`)

// stamped lists the main.* variables an ldflags string sets.
func stamped(ldflags string) []string {
	var out []string
	for _, m := range xFlag.FindAllStringSubmatch(ldflags, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

// TestServerBuild: linux and darwin on amd64 and arm64, static (cgo off),
// -trimpath, stamped with exactly the variables cmd/meshguard declares —
// the same ones `make build` stamps — from the commit, not the clock.
func TestServerBuild(t *testing.T) {
	b := build(t, load(t), "meshguard")
	vars := mainStringVars(t)
	if !slices.Equal(vars, []string{"commit", "date", "version"}) {
		t.Fatalf("cmd/meshguard declares %q: update this test and the stamps together", vars)
	}
	makefile, err := os.ReadFile(root + "Makefile")
	if err != nil {
		t.Fatal(err)
	}
	makeLD := regexp.MustCompile(`(?m)^LDFLAGS\s*:?=(.*)$`).FindSubmatch(makefile)
	if makeLD == nil {
		t.Fatal("no LDFLAGS line in the Makefile")
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"main", b.Main, "./cmd/meshguard"},
		{"binary", b.Binary, "meshguard"},
		{"goos", sorted(b.Goos), []string{"darwin", "linux"}},
		{"goarch", sorted(b.Goarch), []string{"amd64", "arm64"}},
		{"cgo off", slices.Contains(b.Env, "CGO_ENABLED=0"), true},
		{"trimpath", slices.Contains(b.BuildDetails.Flags, "-trimpath"), true},
		{"ldflags stamp main's variables", stamped(strings.Join(b.BuildDetails.Ldflags, " ")), vars},
		{"make build stamps the same", stamped(string(makeLD[1])), vars},
		{"date is the commit's", strings.Contains(strings.Join(b.BuildDetails.Ldflags, " "), "main.date={{ .CommitDate }}"), true},
		{"file times are the commit's", b.ModTimestamp, "{{ .CommitTimestamp }}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !equal(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

// TestNoWallClock: every build sets its ldflags, none from the wall clock
// ({{ .Date }}); empty ldflags get GoReleaser's default, which stamps it.
func TestNoWallClock(t *testing.T) {
	for _, b := range load(t).Builds {
		ld := strings.Join(b.BuildDetails.Ldflags, " ")
		if strings.TrimSpace(ld) == "" || regexp.MustCompile(`\.Date\b`).MatchString(ld) {
			t.Errorf("build %s: ldflags %q: set them, without {{ .Date }} (the commit's is {{ .CommitDate }})", b.ID, ld)
		}
	}
}

// TestFilterAsset: the wasm filter is built as `make wasm` builds it and
// shipped as its own file, listed in the checksums with the archives.
func TestFilterAsset(t *testing.T) {
	p := load(t)
	b := build(t, p, "filter")
	if b.Dir != "wasmfilter" || !slices.Equal(b.Goos, []string{"wasip1"}) || !slices.Equal(b.Goarch, []string{"wasm"}) || b.BuildDetails.Buildmode != "c-shared" {
		t.Errorf("filter build: dir %q, %v/%v, buildmode %q; want wasmfilter, wasip1/wasm, c-shared", b.Dir, b.Goos, b.Goarch, b.BuildDetails.Buildmode)
	}
	var shipped bool
	for _, a := range p.Archives {
		if slices.Contains(a.IDs, "filter") {
			shipped = slices.Equal(a.Formats, []string{"binary"})
		}
	}
	if !shipped {
		t.Error("no archive ships the filter build as a plain file (formats: [binary])")
	}
	if p.Checksum.Disable {
		t.Error("checksums disabled")
	}
}

// TestServerArchives: every server build is archived, with the VM files
// the install guide points at, and every file named exists.
func TestServerArchives(t *testing.T) {
	p := load(t)
	var found bool
	for _, a := range p.Archives {
		if !slices.Contains(a.IDs, "meshguard") {
			continue
		}
		found = true
		var names []string
		for _, f := range a.Files {
			names = append(names, f.Source)
			if m, err := filepath.Glob(root + f.Source); err != nil || len(m) == 0 {
				t.Errorf("archive file %s: matches nothing (%v)", f.Source, err)
			}
		}
		for _, want := range []string{"LICENSE", "deploy/systemd/meshguard.service", "deploy/systemd/meshguard.env", "examples/policies/*.yaml"} {
			if !slices.Contains(names, want) {
				t.Errorf("the archives lack %s", want)
			}
		}
	}
	if !found {
		t.Fatal("no archive of the meshguard build")
	}
}

// TestNothingPublishedOrFetched: no release, no changelog (which may ask
// the forge), so `make release` works offline and publishes nothing.
func TestNothingPublishedOrFetched(t *testing.T) {
	p := load(t)
	if d := p.Release.Disable; d != "true" {
		t.Errorf("release.disable = %q, want true", d)
	}
	if p.Changelog.Disable != "true" {
		t.Errorf("changelog.disable = %q, want true", p.Changelog.Disable)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func equal(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return slices.Equal(as, bs)
	}
	return a == b
}
