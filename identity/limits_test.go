package identity

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// TestAgentLimitsAreExact holds each documented limit on an agent's fields
// (docs/identity.md) at its value: the limit itself is accepted, one more
// is refused with ErrInvalidAgent naming the field. Mutation testing
// (docs/mutation.md) found every one of these limits could move by one
// without a test noticing.
func TestAgentLimitsAreExact(t *testing.T) {
	list := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	metadata := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	tags := func(i int) string { return fmt.Sprintf("t%d", i) }
	hosts := func(i int) string { return fmt.Sprintf("h%d.example", i) }
	spiffe := func(i int) string { return fmt.Sprintf("spiffe://cluster.local/ns/a/sa/s%d", i) }
	label := func(n int) string { return strings.Repeat("a", n) }
	// a host of n bytes: labels of 63 bytes (the DNS maximum) between dots
	longHost := func(n int) string {
		b := []byte(label(n))
		for i := 63; i < n-1; i += 64 {
			b[i] = '.'
		}
		return string(b)
	}

	tests := []struct {
		name   string
		field  string
		at     func(*Agent) // at the limit: valid
		beyond func(*Agent) // one past it: invalid
	}{
		{"name of 128 characters", "name",
			func(a *Agent) { a.Name = label(MaxNameLen) },
			func(a *Agent) { a.Name = label(MaxNameLen + 1) }},
		{"64 tags", "tags",
			func(a *Agent) { a.Tags = list(MaxTags, tags) },
			func(a *Agent) { a.Tags = list(MaxTags+1, tags) }},
		{"a tag of 1,024 bytes", "tags",
			func(a *Agent) { a.Tags = []string{label(1024)} },
			func(a *Agent) { a.Tags = []string{label(1025)} }},
		{"64 hosts", "hosts",
			func(a *Agent) { a.Hosts = list(MaxHosts, hosts) },
			func(a *Agent) { a.Hosts = list(MaxHosts+1, hosts) }},
		{"a host of 253 bytes", "hosts",
			func(a *Agent) { a.Hosts = []string{longHost(253)} },
			func(a *Agent) { a.Hosts = []string{longHost(254)} }},
		{"64 metadata pairs", "metadata",
			func(a *Agent) { a.Metadata = metadata(MaxMetadataKeys) },
			func(a *Agent) { a.Metadata = metadata(MaxMetadataKeys + 1) }},
		{"a metadata key of 1,024 bytes", "metadata",
			func(a *Agent) { a.Metadata = map[string]string{label(1024): "v"} },
			func(a *Agent) { a.Metadata = map[string]string{label(1025): "v"} }},
		{"a metadata value of 1,024 bytes", "metadata",
			func(a *Agent) { a.Metadata = map[string]string{"k": label(1024)} },
			func(a *Agent) { a.Metadata = map[string]string{"k": label(1025)} }},
		{"16 SPIFFE IDs", "spiffeIds",
			func(a *Agent) { a.SPIFFEIDs = list(MaxSPIFFEIDs, spiffe) },
			func(a *Agent) { a.SPIFFEIDs = list(MaxSPIFFEIDs+1, spiffe) }},
		{"a SPIFFE ID of 2,048 bytes", "spiffeIds",
			func(a *Agent) { a.SPIFFEIDs = []string{"spiffe://td/" + label(MaxSPIFFEIDLen-len("spiffe://td/"))} },
			func(a *Agent) { a.SPIFFEIDs = []string{"spiffe://td/" + label(MaxSPIFFEIDLen+1-len("spiffe://td/"))} }},
		{"a trust domain of 255 bytes", "spiffeIds",
			func(a *Agent) { a.SPIFFEIDs = []string{"spiffe://" + label(255) + "/x"} },
			func(a *Agent) { a.SPIFFEIDs = []string{"spiffe://" + label(256) + "/x"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := func() Agent {
				return Agent{ID: "agent_limits", Name: "limits", TrustTier: trust.Verified, Status: StatusActive}
			}
			a := base()
			tc.at(&a)
			if err := a.Validate(); err != nil {
				t.Fatalf("at the limit: Validate() = %v, want nil", err)
			}
			b := base()
			tc.beyond(&b)
			err := b.Validate()
			if !errors.Is(err, ErrInvalidAgent) || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("one past the limit: Validate() = %v, want ErrInvalidAgent about %s", err, tc.field)
			}
		})
	}
}

// TestAgentIDShape: ValidAgentID accepts IDPrefix and 1 to 64 letters, digits,
// '_' or '-' (its documented shape; the verifier requires it of a token's sub).
func TestAgentIDShape(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"agent_a", true},
		{"agent_" + strings.Repeat("Z9_-", 16), true}, // 64
		{"agent_" + strings.Repeat("a", 65), false},
		{"agent_", false},
		{"agent", false},
		{"Agent_abc", false},
		{"xgent_abc", false},
		{"agent_a.b", false},
		{"agent_a/b", false},
		{"agent_a b", false},
		{"agent_é", false},
		{"agent_0zAZaz09", true},
		{"agent_a@", false}, // '@' is 'A'-1
		{"agent_a[", false}, // '[' is 'Z'+1
		{"agent_a`", false}, // '`' is 'a'-1
		{"agent_a{", false}, // '{' is 'z'+1
		{"agent_a/", false}, // '/' is '0'-1
		{"agent_a:", false}, // ':' is '9'+1
	}
	for _, tc := range tests {
		if got := ValidAgentID(tc.id); got != tc.want {
			t.Errorf("ValidAgentID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// TestAgentStatusIsActiveOrRevoked: the two statuses of docs/identity.md are
// valid, anything else is refused.
func TestAgentStatusIsActiveOrRevoked(t *testing.T) {
	for _, tc := range []struct {
		status Status
		valid  bool
	}{
		{StatusActive, true},
		{StatusRevoked, true},
		{"", false},
		{"Active", false},
		{"disabled", false},
	} {
		a := Agent{ID: "agent_s", Name: "s", TrustTier: trust.Verified, Status: tc.status}
		err := a.Validate()
		if tc.valid && err != nil {
			t.Errorf("status %q: Validate() = %v, want nil", tc.status, err)
		}
		if !tc.valid && (!errors.Is(err, ErrInvalidAgent) || !strings.Contains(err.Error(), "status:")) {
			t.Errorf("status %q: Validate() = %v, want ErrInvalidAgent about status", tc.status, err)
		}
	}
}

// TestSPIFFETrustDomainCharacters: a trust domain is lower-case a-z, 0-9,
// '.', '-' and '_' (the SPIFFE ID specification), the ends of each range
// included and their neighbours refused.
func TestSPIFFETrustDomainCharacters(t *testing.T) {
	for _, tc := range []struct {
		td   string
		want bool
	}{
		{"az09.-_", true},
		{"z", true},
		{"9", true},
		{"a`", false}, // '`' is 'a'-1
		{"a{", false}, // '{' is 'z'+1
		{"a/", false}, // '/' is '0'-1, and ends the trust domain: empty path segment
		{"a:", false}, // ':' is '9'+1
		{"A", false},
	} {
		id := "spiffe://" + tc.td + "/ns/x"
		if got := ValidSPIFFEID(id); got != tc.want {
			t.Errorf("ValidSPIFFEID(%q) = %v, want %v", id, got, tc.want)
		}
	}
}
