package identity

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

func TestValidSPIFFEID(t *testing.T) {
	long := "spiffe://cluster.local/" + strings.Repeat("a", MaxSPIFFEIDLen-len("spiffe://cluster.local/"))
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"istio service account", "spiffe://cluster.local/ns/research/sa/researcher", true},
		{"trust domain only", "spiffe://example.org", true},
		{"every allowed character", "spiffe://a-b_c.9/A-z_0.9/x", true},
		{"segment that only starts with dots", "spiffe://td/..x/.y", true},
		{"exactly the length limit", long, true},
		{"one byte over the limit", long + "a", false},
		{"empty", "", false},
		{"other scheme", "https://cluster.local/ns/a", false},
		{"upper-case scheme", "SPIFFE://cluster.local/ns/a", false},
		{"no authority", "spiffe:cluster.local/ns/a", false},
		{"empty trust domain", "spiffe:///ns/a", false},
		{"upper-case trust domain", "spiffe://Cluster.local/ns/a", false},
		{"port", "spiffe://cluster.local:8080/ns/a", false},
		{"userinfo", "spiffe://user@cluster.local/ns/a", false},
		{"query", "spiffe://cluster.local/ns/a?x=1", false},
		{"fragment", "spiffe://cluster.local/ns/a#x", false},
		{"trailing slash", "spiffe://cluster.local/ns/a/", false},
		{"trust domain with trailing slash", "spiffe://cluster.local/", false},
		{"empty segment", "spiffe://cluster.local/ns//a", false},
		{"dot segment", "spiffe://cluster.local/ns/./a", false},
		{"dot-dot segment", "spiffe://cluster.local/ns/../a", false},
		{"percent-encoding", "spiffe://cluster.local/ns/%61", false},
		{"space", "spiffe://cluster.local/ns/a b", false},
		{"non-ASCII", "spiffe://cluster.local/ns/é", false},
		{"NUL", "spiffe://cluster.local/ns/a\x00", false},
		{"trust domain too long", "spiffe://" + strings.Repeat("a", 256) + "/x", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidSPIFFEID(tc.id); got != tc.want {
				t.Errorf("ValidSPIFFEID(%q) = %v, want %v (%v)", tc.id, got, tc.want, checkSPIFFEID(tc.id))
			}
		})
	}
}

func TestAgentValidateSPIFFEIDs(t *testing.T) {
	base := Agent{Name: "researcher", TrustTier: trust.Verified, Status: StatusActive}
	many := make([]string, MaxSPIFFEIDs+1)
	for i := range many {
		many[i] = fmt.Sprintf("spiffe://cluster.local/ns/n/sa/s%d", i)
	}
	tests := []struct {
		name    string
		ids     []string
		wantErr string // "" for valid
	}{
		{"none", nil, ""},
		{"two", []string{"spiffe://cluster.local/ns/a/sa/r", "spiffe://other.td/r"}, ""},
		{"the limit", many[:MaxSPIFFEIDs], ""},
		{"over the limit", many, "more than"},
		{"listed twice", []string{"spiffe://cluster.local/ns/a/sa/r", "spiffe://cluster.local/ns/a/sa/r"}, "listed twice"},
		{"not a SPIFFE ID", []string{"cluster.local/ns/a/sa/r"}, "expected spiffe://"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			a.SPIFFEIDs = tc.ids
			err := a.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidAgent) || !strings.Contains(err.Error(), "spiffeIds") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want ErrInvalidAgent naming spiffeIds and %q", err, tc.wantErr)
			}
		})
	}
}
