package audit

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendTimeIsRFC3339Nano holds the canonical encoding's hand-written
// timestamp to what AppendFormat writes, byte for byte: a difference would
// change every record's hash.
func TestAppendTimeIsRFC3339Nano(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	tests := []struct {
		name string
		t    time.Time
	}{
		{"zero time", time.Time{}},
		{"whole second", time.Date(2026, 12, 6, 21, 8, 20, 0, time.UTC)},
		{"one nanosecond", time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC)},
		{"tenth of a second", time.Date(2026, 1, 2, 3, 4, 5, 100_000_000, time.UTC)},
		{"microseconds", time.Date(2026, 1, 2, 3, 4, 5, 123_456_000, time.UTC)},
		{"every digit", time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},
		{"another zone", time.Date(2026, 3, 1, 2, 0, 0, 5_000, east)},
		{"year 0", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 10, time.UTC)},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"negative year", time.Date(-1, 6, 1, 0, 0, 0, 7, time.UTC)},
		{"leap day", time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)},
		{"now, with a monotonic reading", time.Now()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := string(appendTime(nil, tc.t)), tc.t.UTC().Format(time.RFC3339Nano); got != want {
				t.Fatalf("appendTime = %q, want %q", got, want)
			}
		})
	}
	rng := rand.New(rand.NewPCG(21, 4))
	for range 100_000 {
		tm := time.Unix(rng.Int64N(253402300800), rng.Int64N(1e9)) // up to the year 9999
		if rng.IntN(4) == 0 {
			tm = tm.Truncate(time.Millisecond)
		}
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(time.RFC3339Nano); got != want {
			t.Fatalf("appendTime(%d, %d) = %q, want %q", tm.Unix(), tm.Nanosecond(), got, want)
		}
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1796000000), int64(120))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		tm := time.Unix(sec, nsec)
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(time.RFC3339Nano); got != want {
			t.Fatalf("appendTime(%d, %d) = %q, want %q", sec, nsec, got, want)
		}
	})
}
