package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// TestValidateNameAndSPIFFEMessages pins what an operator reads when an
// agent's name or SPIFFE ID is refused (the admin API's 400 carries it):
// the field, then what is wrong, word for word.
func TestValidateNameAndSPIFFEMessages(t *testing.T) {
	tests := []struct {
		name string
		edit func(a *Agent)
		want string
	}{
		{"an empty name", func(a *Agent) { a.Name = "" }, "invalid agent: name: must not be empty"},
		{"a name over its limit", func(a *Agent) { a.Name = strings.Repeat("n", MaxNameLen+1) }, "invalid agent: name: longer than 128 characters"},
		{"a name with a space", func(a *Agent) { a.Name = "a b" },
			`invalid agent: name: "a b": expected letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{"a name like an id", func(a *Agent) { a.Name = "agent_x" }, `invalid agent: name: "agent_x": must not start with "agent_" (reserved for ids)`},
		{"a SPIFFE ID over its limit", func(a *Agent) { a.SPIFFEIDs = []string{"spiffe://td/" + strings.Repeat("p", MaxSPIFFEIDLen)} },
			"invalid agent: spiffeIds: longer than 2048 bytes"},
		{"no spiffe scheme", func(a *Agent) { a.SPIFFEIDs = []string{"https://td/x"} },
			`invalid agent: spiffeIds: "https://td/x": ` + spiffeIDExpectation},
		{"an empty trust domain", func(a *Agent) { a.SPIFFEIDs = []string{"spiffe:///x"} },
			`invalid agent: spiffeIds: "spiffe:///x": the trust domain must be 1 to 255 characters`},
		{"an upper-case trust domain", func(a *Agent) { a.SPIFFEIDs = []string{"spiffe://TD/x"} },
			`invalid agent: spiffeIds: "spiffe://TD/x": trust domain character 'T': ` + spiffeIDExpectation},
		{"a dot segment", func(a *Agent) { a.SPIFFEIDs = []string{"spiffe://td/a/../b"} },
			`invalid agent: spiffeIds: "spiffe://td/a/../b": empty or dot path segment: ` + spiffeIDExpectation},
		{"a percent in the path", func(a *Agent) { a.SPIFFEIDs = []string{"spiffe://td/a%2F"} },
			`invalid agent: spiffeIds: "spiffe://td/a%2F": path character '%': ` + spiffeIDExpectation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := Agent{ID: "agent_messages", Name: "messages", TrustTier: trust.Verified, Status: StatusActive}
			tc.edit(&a)
			err := a.Validate()
			if !errors.Is(err, ErrInvalidAgent) || err.Error() != tc.want {
				t.Fatalf("Validate() = %v\nwant %s", err, tc.want)
			}
		})
	}
}
