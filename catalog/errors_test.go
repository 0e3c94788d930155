package catalog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// several holds one good entry and four bad ones, each bad in more than
// one way; the comments are the line numbers.
const several = `services:
  - name: ok
    hosts: [ok.mesh]
    port: 80
    endpoints: ["10.0.0.1:80"]
  - name: Bad_Name
    hosts: [ok.mesh, "b.mesh:80"]
    port: 70000
    endpoints: ["10.0.0.1"]
    minTier: root
  - name: ok
    hosts:
      - c.mesh
      - c.mesh
    port: 80
    endpoints: ["10.0.0.2:80"]
    routes:
      - {path: x, action: read}
      - path: /y
        action: "read:y"
        method: BREW
  - name: typo
    hosts: [t.mesh]
    port: http
    endpoints: ["10.0.0.3:80"]
    weight: 3
  - hosts: [n.mesh]
    port: 80
    endpoints: ["10.0.0.4:80"]
`

// TestParseReportsEveryError: a file with several bad entries is refused
// with every problem, each with its line, entry and field, in line order.
func TestParseReportsEveryError(t *testing.T) {
	want := []struct {
		line         int
		entry, field string
		msg          string // the start of the message
	}{
		{6, "services[1] (Bad_Name)", "name", `"Bad_Name": expected a DNS label`},
		{7, "services[1] (Bad_Name)", "hosts[1]", `"b.mesh:80": expected a host name without a port`},
		{7, "services[1] (Bad_Name)", "hosts[0]", `"ok.mesh" already belongs to service "ok"`},
		{8, "services[1] (Bad_Name)", "port", "70000: expected 1 to 65535"},
		{9, "services[1] (Bad_Name)", "endpoints[0]", `"10.0.0.1": expected host:port`},
		{10, "services[1] (Bad_Name)", "minTier", `"root": expected untrusted`},
		{11, "services[2] (ok)", "name", `"ok" is also services[0]`},
		{14, "services[2] (ok)", "hosts[1]", `"c.mesh" is listed twice`},
		{18, "services[2] (ok)", "routes[0].path", `"x": must start with /`},
		{18, "services[2] (ok)", "routes[0].action", `"read": expected verb:resource`},
		{21, "services[2] (ok)", "routes[1].method", `"BREW": expected GET`},
		{24, "services[3] (typo)", "", "cannot unmarshal !!str `http` into int"},
		{26, "services[3] (typo)", "weight", "unknown key"},
		{27, "services[4]", "name", "required"},
	}
	c, err := Parse("services.yaml", []byte(several))
	var list ErrorList
	if c != nil || !errors.As(err, &list) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, %v; want an ErrorList", c, err)
	}
	for i, w := range want {
		t.Run(fmt.Sprintf("line %d %s", w.line, w.field), func(t *testing.T) {
			if i >= len(list) {
				t.Fatalf("missing; the errors are:\n%v", err)
			}
			e := list[i]
			if e.File != "services.yaml" || e.Line != w.line || e.Entry != w.entry || e.Field != w.field || !strings.HasPrefix(e.Msg, w.msg) {
				t.Fatalf("got %#v\nwant %+v", *e, w)
			}
		})
	}
	if len(list) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(list), len(want), err)
	}
	// The text is what the CLI and the log show, one error a line.
	if first := strings.Split(err.Error(), "\n")[0]; first != `services.yaml:6: services[1] (Bad_Name): name: "Bad_Name": expected a DNS label (lower-case letters, digits and '-', at most 63)` {
		t.Fatalf("first line: %s", first)
	}
}

// TestErrorsBounded: a refusal lists at most MaxErrors errors and counts
// the rest; values repeated in errors are cut.
func TestErrorsBounded(t *testing.T) {
	long := strings.Repeat("x", 500) // past the 64 bytes an error quotes, and the 300 a test allows each
	tests := []struct {
		name     string
		services int
		wantLen  int
		wantLast string
	}{
		{"under the bound", MaxErrors - 1, MaxErrors - 1, "(1001 bytes): not an agent name"},
		{"at the bound", MaxErrors, MaxErrors, "(1001 bytes): not an agent name"},
		{"over the bound", MaxErrors + 50, MaxErrors + 1, "… and 50 more errors (only the first 100 are listed)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("services:\n")
			for i := range tc.services {
				fmt.Fprintf(&b, "  - {name: s%d, hosts: [h%d.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], agent: %q}\n", i, i, long+" "+long)
			}
			_, err := Parse("services.yaml", []byte(b.String()))
			var list ErrorList
			if !errors.As(err, &list) || len(list) != tc.wantLen {
				t.Fatalf("got %d errors, want %d", len(list), tc.wantLen)
			}
			if last := list[len(list)-1]; !strings.HasSuffix(last.Error(), tc.wantLast) {
				t.Fatalf("last: %v", last)
			}
			if len(err.Error()) > 300*len(list) {
				t.Fatalf("%d bytes of errors: a long value is repeated whole", len(err.Error()))
			}
		})
	}
}

// TestNewFromPlacesErrors: services not from a file (the admin API's, the
// stored ones) are named as origin says.
func TestNewFromPlacesErrors(t *testing.T) {
	good := Service{Name: "a", Hosts: []string{"a.mesh"}, Port: 80, Endpoints: []string{"10.0.0.1:80"}}
	put := Service{Name: "b", Hosts: []string{"b.mesh", "A.mesh"}, Port: 0, Endpoints: []string{"10.0.0.1:80"}}
	_, err := NewFrom([]Service{good, put}, func(i int) (string, int) {
		if i == 0 {
			return "services.yaml", 0
		}
		return "service b", -1
	})
	want := "service b: port: 0: expected 1 to 65535\nservice b: hosts[1]: \"a.mesh\" already belongs to service \"a\""
	if !errors.Is(err, ErrInvalid) || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}
