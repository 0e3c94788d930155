package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/meshguard/meshguard"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string // direct, non-test imports
	Deps       []string // everything it builds on
}

// listPackages is the module's import graph, read by `go list` once for
// all the tests.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	dir := root(t)
	graph.once.Do(func() { graph.pkgs, graph.err = goList(dir) })
	if graph.err != nil {
		t.Fatal(graph.err)
	}
	return graph.pkgs
}

// graph holds the one `go list` answer.
var graph struct {
	once sync.Once
	pkgs map[string]pkg
	err  error
}

// goList runs `go list` over the module at dir.
func goList(dir string) (map[string]pkg, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return nil, fmt.Errorf("the go command is needed to read the import graph: %w", err)
	}
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", module+"/...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list: %w", err)
		}
		pkgs[short(p.ImportPath)] = p
	}
	if len(pkgs) < 10 {
		return nil, fmt.Errorf("go list found %d packages; is the test running inside the module?", len(pkgs))
	}
	return pkgs, nil
}

// root is the module's directory (two up from here).
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", dir, err)
	}
	return dir
}

// short is a module package's path inside the module ("engine",
// "internal/edge"); other paths are returned whole.
func short(path string) string {
	if path == module {
		return "."
	}
	if rest, ok := strings.CutPrefix(path, module+"/"); ok {
		return rest
	}
	return path
}

// matches reports whether a package path is one of the patterns: "x" is
// the package x, "x/..." is x and everything below it.
func matches(path string, patterns []string) bool {
	if slices.Contains(patterns, "...") {
		return true
	}
	for _, p := range patterns {
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			if path == base || strings.HasPrefix(path, base+"/") {
				return true
			}
		} else if path == p {
			return true
		}
	}
	return false
}

// Groups of packages, by what they are (docs/architecture.md).
var (
	// core decides: the engine and everything it builds on. It knows
	// nothing of the ways a request arrives or of what wires it up.
	core = []string{"trust", "policy", "identity", "engine", "audit", "ratelimit", "catalog", "agentproto",
		"api", "internal/agentcache", "internal/edge", "internal/yamldoc"}
	// leaves build on nothing of the module but the API's types: every
	// other package may use them.
	leaves = []string{"trust", "audit", "api", "internal/edge", "internal/httpjson", "internal/yamldoc",
		"internal/testenv", "internal/envoysub", "internal/tlsfiles/...", "internal/edge/edgetest"}
	// points are the enforcement points: each turns its input into an
	// engine request and the decision into its answer.
	points = []string{"extauthz", "gateway", "checkapi", "filterapi"}
	// filter is what the wasm filter embeds: it must stay light.
	filter = []string{"filterconfig", "filterdecider", "filterprotocol", "policy", "trust", "catalog", "engine", "agentproto"}
	// control is the admin API and the control plane.
	control = []string{"admin", "xds", "proxyauth", "catalog/registry", "store", "alert", "telemetry", "config", "replay", "approvallink", "approvalapi", "console"}
	// wiring builds everything; only the command, the examples and the
	// load harness build on it.
	wiring = []string{"server", "cli"}
	// sdk is what an agent's own code imports.
	sdk = []string{"client", "client/agent", "api"}
	// programs may build on anything.
	programs = []string{"cmd/...", "examples/...", "bench/...", "internal/archtest"}
)

// rule: a package matching from (and not except) must not import,
// directly, one matching to.
type rule struct {
	why          string
	from, except []string
	to, allow    []string // allow: exceptions to to
}

var rules = []rule{
	{why: "the engine and what it builds on know nothing of enforcement points, the control plane, the SDK or the wiring",
		from: core, to: concat(points, control, wiring, []string{"client"})},
	{why: "an enforcement point builds on the engine, not on another point, the admin API, the store or the wiring",
		from: points, to: concat(points, []string{"admin", "store", "config", "client"}, wiring)},
	{why: "the admin API decides no request itself: it builds on no enforcement point",
		from: []string{"admin"}, to: concat(points, wiring)},
	{why: "the control plane does not build on the wiring",
		from: control, to: wiring},
	{why: "what the wasm filter embeds builds on nothing server-side",
		from: filter, to: concat(points, control, wiring, []string{"client"})},
	{why: "the SDK builds on the API's types alone",
		from: sdk, to: []string{"..."}, allow: []string{"api", "trust", "audit"}},
	{why: "a leaf builds on nothing of the module but the API's types",
		from: leaves, to: []string{"..."}, allow: []string{"api", "trust", "audit"}},
	{why: "only programs build on the wiring",
		from: []string{"..."}, except: concat(programs, wiring), to: wiring},
	{why: "only the command builds on the CLI",
		from: []string{"..."}, except: concat(programs), to: []string{"cli"}},
}

func concat(groups ...[]string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// TestLayering holds every package's direct imports to the rules.
func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	// A rule naming a package that does not exist guards nothing: a
	// rename must update the rules.
	named := map[string]bool{}
	for _, r := range rules {
		for _, p := range concat(r.from, r.except, r.to, r.allow) {
			named[p] = true
		}
	}
	for p := range named {
		found := p == "..."
		for q := range pkgs {
			found = found || matches(q, []string{p})
		}
		if !found {
			t.Errorf("a rule names %q, which matches no package of the module (renamed?)", p)
		}
	}
	for _, p := range sortedKeys(pkgs) {
		for _, imp := range pkgs[p].Imports {
			imp = short(imp)
			if _, ours := pkgs[imp]; !ours || imp == p {
				continue
			}
			for _, r := range rules {
				if r.forbids(p, imp) {
					t.Errorf("%s imports %s: %s", p, imp, r.why)
				}
			}
		}
	}
}

func (r rule) forbids(from, to string) bool {
	if !matches(from, r.from) || matches(from, r.except) || matches(to, r.allow) {
		return false
	}
	return matches(to, r.to)
}

// heavy are the dependencies the SDK and the wasm filter's packages must
// not drag in, even indirectly.
var heavy = []string{"github.com/envoyproxy/", "google.golang.org/grpc", "google.golang.org/protobuf",
	"github.com/jackc/", "modernc.org/", "go.opentelemetry.io/otel/sdk", "github.com/prometheus/"}

// TestLightPackages holds the SDK and the filter's packages to their
// point: a program that speaks MeshGuard's API, or the .wasm, links no
// control plane, gRPC, database or metrics library. The SDK does not link
// the JWT library either.
func TestLightPackages(t *testing.T) {
	pkgs := listPackages(t)
	check := func(p string, banned []string) {
		for _, d := range pkgs[p].Deps {
			for _, h := range banned {
				if strings.HasPrefix(d, h) {
					t.Errorf("%s depends on %s", p, d)
				}
			}
		}
	}
	for _, p := range sdk {
		check(p, concat(heavy, []string{"github.com/lestrrat-go/"}))
		for _, d := range pkgs[p].Deps {
			if d = short(d); d != p && pkgs[d].ImportPath != "" && !matches(d, []string{"api", "trust", "audit"}) {
				t.Errorf("%s depends on %s: only api, trust and audit are light enough for the SDK", p, d)
			}
		}
	}
	for _, p := range filter {
		check(p, heavy)
	}
}

// TestEveryPackageIsOnTheMap: docs/architecture.md names every package
// (a row of its own, or in its parent's row for test support), so ls, the page and the rules above tell one story.
func TestEveryPackageIsOnTheMap(t *testing.T) {
	pkgs := listPackages(t)
	page, err := os.ReadFile(filepath.Join(root(t), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sortedKeys(pkgs) {
		if p == "." || strings.HasPrefix(p, "examples/") || strings.HasPrefix(p, "bench/") || strings.HasPrefix(p, "cmd/") && p != "cmd/meshguard" {
			continue
		}
		if !strings.Contains(string(page), "`"+p+"`") {
			t.Errorf("docs/architecture.md does not name package %s (give it a row, [`%s`](../%s), or name it in its parent's)", p, p, p)
		}
	}
}

func sortedKeys(m map[string]pkg) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
