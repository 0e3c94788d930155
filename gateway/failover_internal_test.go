package gateway

import (
	"io"
	"strings"
	"testing"
)

// closeCounter is a request body that counts its Closes.
type closeCounter struct {
	io.Reader
	closes int
}

func (c *closeCounter) Close() error { c.closes++; return nil }

// TestTryBodyClose: a request body sent by several tries is closed once,
// by the last try — never by a superseded try's late Close (its transport
// may call it while the next try streams the body), never before a try
// that may still send it.
func TestTryBodyClose(t *testing.T) {
	tests := []struct {
		name       string
		run        func(first, second *tryBody)
		wantCloses int
	}{
		{"a failed try's Close before the retry keeps the body", func(first, _ *tryBody) {
			_ = first.Close()
		}, 0},
		{"a superseded try's late Close while the next streams keeps it", func(first, second *tryBody) {
			first.stale.Store(true)
			_, _ = second.Read(make([]byte, 3))
			_ = first.Close()
		}, 0},
		{"the last try's Close after it read closes it", func(first, second *tryBody) {
			first.stale.Store(true)
			_, _ = second.Read(make([]byte, 3))
			second.finish()
			_ = second.Close()
		}, 1},
		{"the last try's Close before finish closes it at finish", func(first, second *tryBody) {
			first.stale.Store(true)
			_ = second.Close()
			second.finish()
		}, 1},
		{"finish then Close closes it once", func(first, second *tryBody) {
			first.stale.Store(true)
			second.finish()
			_ = second.Close()
			_ = second.Close()
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := &closeCounter{Reader: strings.NewReader("payload")}
			b := &unsent{rc: rc}
			tc.run(&tryBody{b: b}, &tryBody{b: b})
			if rc.closes != tc.wantCloses {
				t.Fatalf("closed %d times, want %d", rc.closes, tc.wantCloses)
			}
		})
	}
}
