package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// logEvents is a slog.Handler that keeps what the server logs and wakes
// whoever waits for a line: tests wait for what the server says it did
// ("service catalogue reload failed") instead of waiting for time.
type logEvents struct {
	store *logStore
	attrs []slog.Attr
}

type logStore struct {
	mu      sync.Mutex
	lines   []logLine
	changed chan struct{} // closed, and replaced, at each new line
}

// logLine is one logged record: its message and its attributes' values.
type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogEvents() *logEvents {
	return &logEvents{store: &logStore{changed: make(chan struct{})}}
}

func (l *logEvents) Enabled(context.Context, slog.Level) bool { return true }

func (l *logEvents) Handle(_ context.Context, r slog.Record) error {
	line := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range l.attrs {
		line.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		return true
	})
	s := l.store
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func (l *logEvents) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logEvents{store: l.store, attrs: append(append([]slog.Attr(nil), l.attrs...), attrs...)}
}

// WithGroup is not used by the server; groups are flattened.
func (l *logEvents) WithGroup(string) slog.Handler { return l }

// mark is where the next line will be: wait(mark, …) sees only lines
// logged after it was taken.
func (l *logEvents) mark() int {
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	return len(l.store.lines)
}

// wait returns the first line from mark on that match accepts, waiting
// for each new line as it is logged; it fails the test if none comes
// within a generous deadline.
func (l *logEvents) wait(t *testing.T, mark int, what string, match func(logLine) bool) logLine {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		l.store.mu.Lock()
		lines, changed := l.store.lines, l.store.changed
		l.store.mu.Unlock()
		for i := mark; i < len(lines); i++ {
			if match(lines[i]) {
				return lines[i]
			}
		}
		mark = len(lines)
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for the server to log %s", what)
		}
	}
}

// replaceFile gives path new content at once, as editors and ConfigMaps
// do (a watcher never reads it half written).
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".replace-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}
