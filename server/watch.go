package server

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/meshguard/meshguard/policy"
)

// reloader reloads policies and reports the outcome (policy.Loader).
type reloader interface {
	Reload(ctx context.Context) (*policy.Set, error)
}

// signalling is a reloader that signals after each successful reload (the
// wasm filter's configuration carries the policies).
type signalling struct {
	reloader
	signal func()
}

func (s signalling) Reload(ctx context.Context) (*policy.Set, error) {
	set, err := s.reloader.Reload(ctx)
	if err == nil {
		s.signal()
	}
	return set, err
}

// watchFile registers a watcher of file's directory (and its symlink
// target's) before file is first read, so that read is the only one start
// needs: a change made after it makes an event. A watcher that cannot be
// registered is logged, and the file is read once, at start.
func watchFile(file, name string, log *slog.Logger) *dirWatcher {
	if file == "" {
		return nil
	}
	w, err := newFileWatcher(file)
	if err != nil {
		log.Error("watching "+name+" failed; changes need a restart", "error", err)
		return nil
	}
	return w
}

// watchPoliciesDir registers a watcher of dir and those below it, before
// build compiles the policy set from them (see watchFile).
func watchPoliciesDir(dir string, log *slog.Logger) *dirWatcher {
	w, err := newWatcher(dir, true)
	if err != nil {
		log.Error("watching POLICIES_DIR failed; policy changes need a restart", "error", err)
		return nil
	}
	return w
}

// policyReloads is the loop that reloads the policies on every change w
// sees until its context ends (nothing without a watcher).
func policyReloads(w *dirWatcher, r reloader, debounce time.Duration, log *slog.Logger) func(context.Context) {
	if w == nil {
		return func(context.Context) {}
	}
	reload := func(ctx context.Context) {
		set, err := r.Reload(ctx)
		if err != nil {
			log.Error("policy reload failed; the last good policy set stays in force", "error", err)
			return
		}
		log.Info("policies reloaded", "policies", set.Len(), "revision", set.Revision())
	}
	return func(ctx context.Context) { w.run(ctx, debounce, log, reload) }
}

// dirWatcher watches a directory (and, if recursive, those below it).
// It is registered with the kernel when made, before the files are first
// read: a change made after that read is queued by the kernel and never
// missed, however late the goroutine that runs the loop starts.
type dirWatcher struct {
	w         *fsnotify.Watcher
	dir       string
	recursive bool
	add       func(string) error
	file      string // newFileWatcher's file, whose symlink target is followed
}

// newFileWatcher watches file's directory and, when file is a symlink
// leading elsewhere (a secrets mount), its target's directory too: an edit
// of the target makes no event in the link's directory.
func newFileWatcher(file string) (*dirWatcher, error) {
	d, err := newWatcher(filepath.Dir(file), false)
	if err != nil {
		return nil, err
	}
	d.file = file
	if err := d.followLink(); err != nil {
		_ = d.w.Close()
		return nil, err
	}
	return d, nil
}

// followLink watches the directory of the file's symlink target, if it
// has one (again at each change: the link may now lead elsewhere).
func (d *dirWatcher) followLink() error {
	if d.file == "" {
		return nil
	}
	target, err := filepath.EvalSymlinks(d.file)
	if err != nil {
		return nil // no file (yet), or a dangling link: its reload says so
	}
	if dir := filepath.Dir(target); dir != filepath.Dir(d.file) {
		return d.w.Add(dir)
	}
	return nil
}

func newWatcher(dir string, recursive bool) (*dirWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	d := &dirWatcher{w: w, dir: dir, recursive: recursive, add: w.Add}
	if recursive {
		d.add = func(path string) error { return addTree(w, path) }
	}
	if err := d.add(dir); err != nil {
		_ = w.Close()
		return nil, err
	}
	return d, nil
}

// close ends the watch (a second close does nothing).
func (d *dirWatcher) close() {
	if d != nil {
		_ = d.w.Close()
	}
}

// run calls reload on every change, debounced so an editor's
// write-rename-chmod burst (or a ConfigMap's symlink swap) is one reload.
// It returns, and closes the watcher, when ctx ends.
func (d *dirWatcher) run(ctx context.Context, debounce time.Duration, log *slog.Logger, reload func(context.Context)) {
	w := d.w
	defer w.Close()
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				// A new directory (or ConfigMap's ..data swap) must be
				// watched too; errors here surface on the next reload.
				if d.recursive {
					_ = d.add(ev.Name)
				}
			}
			if timer == nil {
				timer = time.AfterFunc(debounce, func() {
					select {
					case fire <- struct{}{}:
					default:
					}
				})
			} else {
				timer.Reset(debounce)
			}
		case <-fire:
			if err := d.followLink(); err != nil {
				log.Warn("file watcher: the file's symlink target cannot be watched", "file", d.file, "error", err)
			}
			reload(ctx)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("file watcher", "dir", d.dir, "error", err)
		}
	}
}

// addTree watches root and every directory below it (fsnotify is not
// recursive).
func addTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil //nolint:nilerr // a file vanishing mid-walk is not an error here
		}
		// Hidden directories are not policy directories (the loader skips
		// them too); a ConfigMap's ..data swap shows up in root itself.
		if path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		return w.Add(path)
	})
}
