package store

import (
	"errors"
	"testing"
)

// TestAnswerReadAgainWhileRowsGo: an answer with a row retention deleted
// meanwhile is read again, up to maxAnswerReads times in all, then
// refused; a read's error ends it at once.
func TestAnswerReadAgainWhileRowsGo(t *testing.T) {
	broken := errors.New("broken read")
	for _, tc := range []struct {
		name      string
		goneReads int   // the first reads with a row gone
		readErr   error // the first read's error
		wantReads int
		wantErr   bool
	}{
		{"nothing gone: one read", 0, nil, 1, false},
		{"gone once: read again", 1, nil, 2, false},
		{"gone in all but the last allowed", maxAnswerReads - 1, nil, maxAnswerReads, false},
		{"gone every time: refused at the bound", 100, nil, maxAnswerReads, true},
		{"a read's error", 0, broken, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads := 0
			out, err := readWhole(func() ([]answerRow, error) {
				reads++
				if tc.readErr != nil {
					return nil, tc.readErr
				}
				return []answerRow{{seq: 2}, {seq: 1, gone: reads <= tc.goneReads}}, nil
			})
			if reads != tc.wantReads || (err != nil) != tc.wantErr {
				t.Fatalf("%d reads, err %v; want %d reads, an error: %v", reads, err, tc.wantReads, tc.wantErr)
			}
			if tc.readErr != nil && !errors.Is(err, tc.readErr) {
				t.Errorf("err %v, want the read's", err)
			}
			if err == nil && len(out) != 2 {
				t.Errorf("%d rows, want the last read's 2", len(out))
			}
		})
	}
}
