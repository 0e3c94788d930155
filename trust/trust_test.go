package trust

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Tier
		wantErr bool
	}{
		{"untrusted", Untrusted, false},
		{"unverified", Untrusted, false},
		{"verified", Verified, false},
		{"trusted", Trusted, false},
		{"privileged", Privileged, false},
		{"Trusted", 0, true},
		{"", 0, true},
		{"admin", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrUnknownTier) {
					t.Fatalf("Parse(%q) error = %v, want ErrUnknownTier", tc.in, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestOrderAndMin(t *testing.T) {
	if Untrusted >= Verified || Verified >= Trusted || Trusted >= Privileged {
		t.Fatal("tiers out of order")
	}
	if Min(Privileged, Verified) != Verified || Min(Untrusted, Trusted) != Untrusted {
		t.Fatal("Min picks the wrong tier")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	b, err := json.Marshal(struct{ T Tier }{Trusted})
	if err != nil || string(b) != `{"T":"trusted"}` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	var v struct{ T Tier }
	if err := json.Unmarshal([]byte(`{"T":"unverified"}`), &v); err != nil || v.T != Untrusted {
		t.Fatalf("unmarshal = %v, %v", v.T, err)
	}
	if err := json.Unmarshal([]byte(`{"T":"root"}`), &v); err == nil {
		t.Fatal("unknown tier accepted")
	}
	if _, err := json.Marshal(Tier(9)); err == nil {
		t.Fatal("invalid tier marshalled")
	}
}
