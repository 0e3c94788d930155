package agentproto_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/agentproto"
)

// TestArgumentIndex: Argument reads a top-level argument through the
// offsets the parse kept (no second scan) and reads again when it kept
// none (an escaped key, more arguments than it indexes); either way each
// argument is what Arguments decodes, and a key sent in another case is
// refused.
func TestArgumentIndex(t *testing.T) {
	many := make([]string, 12)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	for _, tc := range []struct {
		name, args string
	}{
		{"compact", `{"to":"a@x","n":1,"o":{"cc":"c"},"l":[1,2]}`},
		{"spaced", "{ \"to\" :\t\"a@x\" ,\n\"n\" : 1 , \"o\" : { \"cc\" : \"c\" } }"},
		{"empty", `{}`},
		{"escaped key", `{"t\u006f":"a@x","n":1}`},
		{"escaped value", `{"to":"a\"@x","n":"\u00e9"}`},
		{"non-ASCII key", `{"é":"e","to":"a@x"}`},
		{"eight", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"to":"a@x"}`},
		{"more than indexed", "{" + strings.Join(many, ",") + `,"to":"a@x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send","arguments":` + tc.args + `}}`
			c, err := agentproto.ParseMCP("mail", []byte(body), nil)
			if err != nil {
				t.Fatal(err)
			}
			all, err := c.Arguments()
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range all {
				got, ok, err := c.Argument(k)
				if err != nil || !ok || !cmp.Equal(got, want) {
					t.Errorf("Argument(%q) = %v, %v, %v; Arguments has %v", k, got, ok, err, want)
				}
			}
			if _, ok, err := c.Argument("absent"); ok || err != nil {
				t.Errorf("Argument(absent) = %v, %v; want absent", ok, err)
			}
			if _, ok := all["to"]; ok {
				if _, _, err := c.Argument("TO"); !errors.Is(err, agentproto.ErrKeyCase) {
					t.Errorf("Argument(TO) = %v; want ErrKeyCase", err)
				}
			}
		})
	}
}

// TestParseAllocations: the parse's scanner stays on its stack (it holds
// no pointer to itself and the Call keeps none into it), so a 2 KB
// tools/call allocates only the strings the Call carries: its tool name,
// its action and its id.
func TestParseAllocations(t *testing.T) {
	body := body2K()
	n := testing.AllocsPerRun(100, func() {
		if _, err := agentproto.ParseMCP("mail", body, nil); err != nil {
			t.Fatal(err)
		}
	})
	if n > 3 {
		t.Errorf("ParseMCP allocates %v times, want at most 3 (the name, the action and the id)", n)
	}
}
