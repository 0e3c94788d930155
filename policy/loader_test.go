package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoaderKeepsLastGoodSet(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "name: a\nrules: [{name: r, effect: allow, actions: ['read:*']}]")
	writeFile(t, filepath.Join(dir, "sub", "b.yml"), "name: b\nrules: [{name: r, effect: deny, actions: ['write:*']}]")
	writeFile(t, filepath.Join(dir, "notes.txt"), "not a policy")
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "garbage: [")
	writeFile(t, filepath.Join(dir, "..data", "c.yaml"), "garbage: [")

	l := NewLoader(Dir(dir))
	if got := l.Current().Evaluate(&Input{Agent: agent("x", trust.Verified), Action: "read:x"}); got.Reason != ReasonNoPolicy {
		t.Fatalf("before the first load everything is denied: got %s", got.Reason)
	}
	good, err := l.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if good.Len() != 2 || l.Err() != nil {
		t.Fatalf("loaded %d policies, err %v", good.Len(), l.Err())
	}

	writeFile(t, filepath.Join(dir, "a.yaml"), "name: a\nrules: [{name: r, effect: alow, actions: ['read:*']}]")
	set, err := l.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "a.yaml:2: rules[0].effect") {
		t.Fatalf("broken file: err = %v", err)
	}
	if set != good || l.Current() != good || l.Err() == nil {
		t.Fatal("a broken file replaced the last good set")
	}

	writeFile(t, filepath.Join(dir, "a.yaml"), "name: a\nrules: [{name: r, effect: allow, actions: ['read:x']}]")
	fixed, err := l.Reload(ctx)
	if err != nil || fixed == good || fixed.Revision() == good.Revision() || l.Err() != nil {
		t.Fatalf("the fixed file was not loaded: %v", err)
	}
}

func TestLoaderMissingDir(t *testing.T) {
	l := NewLoader(Dir(filepath.Join(t.TempDir(), "nope")))
	if _, err := l.Reload(context.Background()); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("a missing directory is an I/O error, not bad policy input: %v", err)
	}
}

func TestLoaderDuplicateAcrossSources(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "name: a")
	file := filepath.Join(t.TempDir(), "extra.yaml")
	writeFile(t, file, "name: a")
	_, err := Load(context.Background(), Dir(dir), File(file))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "duplicate policy name") {
		t.Fatalf("got %v", err)
	}
}

// TestLoaderAtomicSwap reloads while readers evaluate: every reader sees a
// whole set (both policies of one revision), never a mix.
func TestLoaderAtomicSwap(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	gen := func(v string) {
		writeFile(t, filepath.Join(dir, "a.yaml"), "name: a\nrules: [{name: r"+v+", effect: allow, actions: ['read:*']}]")
		writeFile(t, filepath.Join(dir, "b.yaml"), "name: b\nrules: [{name: r"+v+", effect: allow, actions: ['read:*']}]")
	}
	gen("0")
	l := NewLoader(Dir(dir))
	if _, err := l.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := l.Current()
				a, _ := s.Policy("a")
				b, _ := s.Policy("b")
				if a.Rules[0].Name != b.Rules[0].Name {
					t.Errorf("mixed set: %s vs %s", a.Rules[0].Name, b.Rules[0].Name)
					return
				}
			}
		}()
	}
	for i := range 20 {
		gen(string(rune('0' + i%10)))
		if _, err := l.Reload(ctx); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestLoaderFollowsSymlinkedRoot(t *testing.T) {
	real := t.TempDir()
	writeFile(t, filepath.Join(real, "a.yaml"), "name: a")
	link := filepath.Join(t.TempDir(), "policies")
	if err := os.Symlink(real, link); err != nil {
		t.Skip("symlinks unavailable:", err)
	}
	set, err := Load(context.Background(), Dir(link))
	if err != nil || set.Len() != 1 {
		t.Fatalf("symlinked root: %d policies, %v", set.Len(), err)
	}
	if p, _ := set.Policy("a"); p.Source.File != filepath.Join(link, "a.yaml") {
		t.Fatalf("file reported as %q, want the path under the name given", p.Source.File)
	}
}

func TestReadFileRefusesSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "p.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo unavailable:", err)
	}
	if _, err := ReadFile(fifo); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("FIFO: %v", err)
	}
	if _, err := Load(context.Background(), Dir(filepath.Dir(fifo))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a FIFO in the policy directory: %v", err)
	}
}

// TestLoadReportsEveryProblem: a syntax error in one file does not hide a
// duplicate name between two others.
func TestLoadReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "1.yaml"), "name: a")
	writeFile(t, filepath.Join(dir, "2.yml"), "name: a")
	writeFile(t, filepath.Join(dir, "3.yaml"), "name: b\nrules: [{effect: alow, actions: ['x:y']}]")
	_, err := Load(context.Background(), Dir(dir))
	if err == nil || !strings.Contains(err.Error(), "alow") || !strings.Contains(err.Error(), "duplicate policy name") {
		t.Fatalf("got %v", err)
	}
}

// TestDirSymlinks: symlinks within the policy directory are followed, as a
// Kubernetes ConfigMap mounts its files (name.yaml → ..data/name.yaml,
// ..data → ..2024_01_01_00_00_00.1/); a symlink leading out of it is an
// error naming the link, and the file it points at is neither read nor
// quoted.
func TestDirSymlinks(t *testing.T) {
	const secret = "root:x:0:0:s3cr3t"
	outside := filepath.Join(t.TempDir(), "passwd")
	writeFile(t, outside, secret+"\n")
	outsideDir := t.TempDir()
	writeFile(t, filepath.Join(outsideDir, "p.yaml"), "name: elsewhere\n")
	good := "name: cm\nrules: [{name: r, effect: allow, actions: ['read:*']}]\n"

	tests := []struct {
		name    string
		layout  func(t *testing.T, dir string)
		loaded  []string // policy names, when it loads
		refused string   // the file named in the error, when it does not
	}{
		{"a ConfigMap mount", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "..2024_01_01_00_00_00.1", "cm.yaml"), good)
			symlink(t, "..2024_01_01_00_00_00.1", filepath.Join(dir, "..data"))
			symlink(t, filepath.Join("..data", "cm.yaml"), filepath.Join(dir, "cm.yaml"))
		}, []string{"cm"}, ""},
		{"a symlink to a file in a subdirectory", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "sub", "cm.txt"), good)
			symlink(t, filepath.Join(dir, "sub", "cm.txt"), filepath.Join(dir, "cm.yaml"))
		}, []string{"cm"}, ""},
		{"a symlink to a file outside", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "ok.yaml"), good)
			symlink(t, outside, filepath.Join(dir, "passwd.yaml"))
		}, nil, "passwd.yaml"},
		{"a relative symlink climbing out", func(t *testing.T, dir string) {
			rel, err := filepath.Rel(filepath.Join(dir, "sub"), outside)
			if err != nil {
				t.Fatal(err)
			}
			symlink(t, rel, filepath.Join(dir, "sub", "up.yml"))
		}, nil, "up.yml"},
		{"a symlink to a file in a directory outside", func(t *testing.T, dir string) {
			symlink(t, filepath.Join(outsideDir, "p.yaml"), filepath.Join(dir, "p.yaml"))
		}, nil, "p.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			tt.layout(t, dir)
			set, err := Load(context.Background(), Dir(dir))
			_, filesErr := YAMLFiles(dir)
			if tt.refused == "" {
				if err != nil || filesErr != nil {
					t.Fatalf("Load = %v; YAMLFiles = %v", err, filesErr)
				}
				for _, name := range tt.loaded {
					if _, ok := set.Policy(name); !ok {
						t.Fatalf("policy %q not loaded", name)
					}
				}
				return
			}
			for _, err := range []error{err, filesErr} {
				var list ErrorList
				if !errors.As(err, &list) || len(list) != 1 || filepath.Base(list[0].File) != tt.refused ||
					!strings.Contains(list[0].Msg, "outside the policy directory") {
					t.Fatalf("got %v; want one error naming %s", err, tt.refused)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "elsewhere") || strings.Contains(err.Error(), outside) {
					t.Fatalf("the error quotes what is outside: %v", err)
				}
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
