package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
)

// TestReadBody: the body as sent, whatever the announced length says,
// never more than agentproto.MaxBody+1 bytes, and a failed read an error.
func TestReadBody(t *testing.T) {
	big := bytes.Repeat([]byte("x"), agentproto.MaxBody+10)
	for _, tc := range []struct {
		name     string
		body     []byte
		length   int64 // announced
		want     int   // bytes read
		readFail bool
	}{
		{"as announced", big[:2048], 2048, 2048, false},
		{"empty", nil, 0, 0, false},
		{"unknown length", big[:5000], -1, 5000, false},
		{"shorter than announced", big[:100], 2048, 100, false},
		{"longer than announced", big[:3000], 2048, 3000, false},
		{"over the bound", big, -1, agentproto.MaxBody + 1, false},
		{"over the bound, announced", big, agentproto.MaxBody, agentproto.MaxBody + 1, false},
		{"a failed read", big[:10], 2048, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader = bytes.NewReader(tc.body)
			if tc.readFail {
				rd = io.MultiReader(rd, failingReader{})
			}
			r := &http.Request{ContentLength: tc.length, Body: io.NopCloser(rd)}
			got, err := readBody(r)
			if tc.readFail {
				if !errors.Is(err, errBodyUnread) {
					t.Fatalf("err = %v, want errBodyUnread", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, big[:tc.want]) {
				t.Fatalf("read %d bytes, %v; want the first %d", len(got), err, tc.want)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestReadBodyOneBuffer: a body as long as announced is read into one
// buffer, not copied into a second one to find its end.
func TestReadBodyOneBuffer(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 2048)
	rd := bytes.NewReader(body)
	r := &http.Request{ContentLength: int64(len(body)), Body: io.NopCloser(rd)}
	n := testing.AllocsPerRun(100, func() {
		rd.Reset(body)
		if b, err := readBody(r); err != nil || len(b) != len(body) {
			t.Fatal(len(b), err)
		}
	})
	if n > 1 {
		t.Errorf("readBody allocates %v times for a body of its announced length, want 1", n)
	}
}
