package agentproto

import (
	"bytes"
	"testing"
)

// refStop is stringStop one byte at a time, the rule it must keep.
func refStop(b []byte) (end int, stop byte, ascii bool) {
	ascii = true
	for i, c := range b {
		if c == '"' || c == '\\' || c < 0x20 {
			return i, c, ascii
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return len(b), 0, ascii
}

// TestStringStop: the quick way through a long string (IndexByte, then a
// branch-free pass) and the word-at-a-time way agree with refStop for
// every unusual byte at every place, either side of the quick way's head
// and of each word, with and without a closing quote after it.
func TestStringStop(t *testing.T) {
	for _, special := range []byte{'"', '\\', 0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff, ' '} {
		for n := 0; n <= 72; n++ {
			for p := 0; p < n; p++ {
				for _, tail := range []string{"", `"`, `x"`, `\"`, "\x01\""} {
					b := append(bytes.Repeat([]byte("a"), n), tail...)
					b[p] = special
					e, s, a := stringStop(b)
					we, ws, wa := refStop(b)
					if e != we || s != ws || a != wa {
						t.Fatalf("stringStop(%q) = %d, %q, %v; want %d, %q, %v", b, e, s, a, we, ws, wa)
					}
				}
			}
		}
	}
}

// FuzzStringStop: stringStop is refStop on any bytes.
func FuzzStringStop(f *testing.F) {
	f.Add([]byte(`Lorem ipsum dolor sit amet. Lorem ipsum dolor sit amet."`))
	f.Add([]byte("Lorem ipsum dolor sit amet. \x1f Lorem\""))
	f.Add([]byte(`Lorem ipsum dolor sit amet. \" Lorem"`))
	f.Add([]byte("Lorem ipsum dolor sit amet. \xc3\xa9 Lorem\""))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, s, a := stringStop(b)
		we, ws, wa := refStop(b)
		if e != we || s != ws || a != wa {
			t.Fatalf("stringStop(%q) = %d, %q, %v; want %d, %q, %v", b, e, s, a, we, ws, wa)
		}
	})
}
