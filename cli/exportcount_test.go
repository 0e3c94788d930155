package cli

import (
	"bytes"
	"testing"
)

// TestRecordCounter: the count is right however the stream is split, and
// the data passes through unchanged.
func TestRecordCounter(t *testing.T) {
	tests := []struct {
		name, format, body string
		want               int64
	}{
		{"json, empty", "json", "[\n]\n", 0},
		{"json, one", "json", "[\n{\"id\":\"a\",\"reason\":\"x\\n{\"}\n]\n", 1},
		{"json, three", "json", "[\n{\"id\":\"a\"},\n{\"id\":\"b\"},\n{\"id\":\"c\"}\n]\n", 3},
		{"csv, header only", "csv", "id,reason\n", 0},
		{"csv, two rows", "csv", "id,reason\na,x\nb,y\n", 2},
		{"csv, a newline inside quotes", "csv", "id,reason\na,\"line one\nline two\"\nb,\"say \"\"hi\"\"\n\"\n", 2},
		{"csv, last row without newline", "csv", "id,reason\na,x\nb,y", 2},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, len(tt.body)} {
			t.Run(tt.name, func(t *testing.T) {
				var out bytes.Buffer
				c := newRecordCounter(&out, tt.format)
				for b := []byte(tt.body); len(b) > 0; {
					k := min(chunk, len(b))
					if _, err := c.Write(b[:k]); err != nil {
						t.Fatal(err)
					}
					b = b[k:]
				}
				if got := c.records(); got != tt.want {
					t.Errorf("chunks of %d: records() = %d, want %d", chunk, got, tt.want)
				}
				if out.String() != tt.body {
					t.Errorf("chunks of %d: passed through %q", chunk, out.String())
				}
			})
		}
	}
}
