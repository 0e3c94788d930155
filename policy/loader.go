package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Source supplies policies to a Loader: a directory of YAML files, or (in
// the server) the policies stored through the admin API.
type Source interface {
	Policies(ctx context.Context) ([]*Policy, error)
}

// Dir is a Source reading every *.yaml and *.yml file under a directory, in
// lexical order. Names starting with "." are skipped, which also skips the
// `..data` directories of Kubernetes ConfigMap mounts while following their
// top-level symlinks. A symlink is followed only to a file inside the
// directory (as a ConfigMap's are): one leading out of it is an error
// naming the link, and the file it points at is not read.
type Dir string

// Policies reads and parses the directory; all problems of all files are
// returned together as one ErrorList.
func (d Dir) Policies(ctx context.Context) ([]*Policy, error) {
	files, escaped, err := yamlFiles(string(d))
	if err != nil {
		return nil, err
	}
	ps, err := parseFiles(ctx, files)
	if len(escaped) == 0 {
		return ps, err
	}
	var list ErrorList
	if errors.As(err, &list) {
		escaped = append(escaped, list...)
	} else if err != nil {
		return nil, err
	}
	// In path order, as parseFiles reports.
	slices.SortStableFunc(escaped, func(a, b *Error) int { return strings.Compare(a.File, b.File) })
	return ps, escaped
}

// File is a Source reading one YAML file.
type File string

// Policies reads and parses the file.
func (f File) Policies(ctx context.Context) ([]*Policy, error) {
	return parseFiles(ctx, []string{string(f)})
}

// Path is a Source for a file or a directory, whichever it names; the CLI
// accepts both (`policy validate FILE|DIR`).
func Path(p string) (Source, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("policy path: %w", err)
	}
	if st.IsDir() {
		return Dir(p), nil
	}
	return File(p), nil
}

// YAMLFiles lists the policy files under dir as the loader reads them:
// every *.yaml and *.yml file, in lexical order, names starting with "."
// skipped, a root that is a symlink followed. `meshguard policy apply DIR`
// sends the same files. A symlink leading out of dir is an ErrorList naming
// it, as Dir reports it.
func YAMLFiles(dir string) ([]string, error) {
	files, escaped, err := yamlFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(escaped) > 0 {
		return nil, escaped
	}
	return files, nil
}

// errOutside is the message for a symlink leading out of the policy
// directory. It does not say where to: what is outside is none of the
// policy's business, and errors are shown to operators and clients.
const errOutside = "a symlink to a file outside the policy directory; not read (only symlinks within the directory are followed)"

// yamlFiles is YAMLFiles, with the symlinks leading out of dir apart.
func yamlFiles(dir string) (files []string, escaped ErrorList, err error) {
	// WalkDir does not follow a root that is a symlink (a common way to
	// point at a policy checkout), which would silently find nothing.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading policy directory: %w", err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		// Report paths under the name the caller gave.
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		named := filepath.Join(dir, rel)
		if d.Type()&fs.ModeSymlink != 0 && !within(root, path) {
			escaped = append(escaped, &Error{File: named, Msg: errOutside})
			return nil
		}
		files = append(files, named)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading policy directory: %w", err)
	}
	slices.Sort(files)
	return files, escaped, nil
}

// within reports whether the symlink link resolves to a path inside root
// (itself resolved). A link that does not resolve counts as inside: reading
// it fails with its own error.
func within(root, link string) bool {
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		return true
	}
	rel, err := filepath.Rel(root, target)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func parseFiles(ctx context.Context, files []string) ([]*Policy, error) {
	var all []*Policy
	var errs ErrorList
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := ReadFile(f)
		var bad ErrorList
		if errors.As(err, &bad) {
			errs = append(errs, bad...)
			continue
		} else if err != nil {
			return nil, err
		}
		ps, err := Parse(f, data)
		var list ErrorList
		if errors.As(err, &list) {
			errs = append(errs, list...)
		} else if err != nil {
			return nil, err
		}
		all = append(all, ps...)
	}
	if len(errs) > 0 {
		// The policies that did parse come back too, so Load can still
		// find duplicate names among them; they are never compiled.
		return all, errs
	}
	return all, nil
}

// ReadFile reads a policy, agents or tests file: a regular file (a FIFO or
// a device would hang or never end) of at most MaxFileBytes, which it
// enforces while reading, not by trusting the size Stat reports.
func ReadFile(path string) ([]byte, error) {
	// Stat before opening: opening a FIFO blocks until a writer appears.
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, ErrorList{{File: path, Msg: "not a regular file"}}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, ErrorList{{File: path, Msg: fmt.Sprintf("larger than the %d-byte limit", MaxFileBytes)}}
	}
	return data, nil
}

// Load reads every source and compiles them into one Set.
func Load(ctx context.Context, sources ...Source) (*Set, error) {
	var all []*Policy
	var errs ErrorList
	for _, src := range sources {
		ps, err := src.Policies(ctx)
		var list ErrorList
		switch {
		case errors.As(err, &list):
			errs = append(errs, list...)
		case err != nil:
			return nil, err
		}
		all = append(all, ps...)
	}
	if len(errs) > 0 {
		// Report every problem of the load at once: duplicate names among
		// the policies that did parse count too.
		errs = append(errs, duplicateNames(sortedByName(all))...)
		return nil, errs
	}
	return Compile(all)
}

// Loader holds the policy set in force and replaces it only with a set that
// loads cleanly: a broken file leaves the last good set in force, and the
// error is kept for /ready and the logs. Readers get the whole old set or the
// whole new one, never a mix.
type Loader struct {
	sources []Source
	current atomic.Pointer[Set]

	mu      sync.Mutex // serialises reloads and guards lastErr and retired
	lastErr error
	// retired are the last MaxRetired sets replaced, oldest first: a
	// record a wasm filter decided under one of them is checked against
	// it (Revision).
	retired []*Set
}

// MaxRetired bounds the replaced sets a Loader keeps (Revision).
const MaxRetired = 32

// NewLoader returns a Loader over the sources; call Reload to load them.
// Until a first good load, Current returns an empty set (which denies
// everything with no_policy): MeshGuard fails closed.
func NewLoader(sources ...Source) *Loader {
	l := &Loader{sources: sources}
	empty, _ := Compile(nil)
	l.current.Store(empty)
	return l
}

// Reload reads the sources again. On success the new set is in force and
// returned; on failure the previous set stays and the error is returned.
func (l *Loader) Reload(ctx context.Context) (*Set, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	set, err := Load(ctx, l.sources...)
	l.lastErr = err
	if err != nil {
		return l.current.Load(), err
	}
	if prev := l.current.Load(); prev.Revision() != set.Revision() {
		if len(l.retired) == MaxRetired {
			l.retired = append(l.retired[:0], l.retired[1:]...)
		}
		l.retired = append(l.retired, prev)
	}
	l.current.Store(set)
	return set, nil
}

// Revision returns the set of revision rev: the one in force, or one of
// the last MaxRetired it replaced since the process started; false if rev
// is none of them.
func (l *Loader) Revision(rev string) (*Set, bool) {
	if cur := l.current.Load(); cur.Revision() == rev {
		return cur, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.retired) - 1; i >= 0; i-- {
		if l.retired[i].Revision() == rev {
			return l.retired[i], true
		}
	}
	return nil, false
}

// Current returns the set in force. It is cheap enough for every request.
func (l *Loader) Current() *Set { return l.current.Load() }

// Err returns the error of the last reload, nil if it succeeded.
func (l *Loader) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}
