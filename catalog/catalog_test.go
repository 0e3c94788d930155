package catalog

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/trust"
)

func TestParseExample(t *testing.T) {
	data, err := os.ReadFile("../examples/services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("services.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 3 {
		t.Fatalf("%d services", len(c.Services))
	}
	r := c.Services[0]
	if r.Name != "researcher" || r.MinTier != trust.Verified || len(r.Routes) != 2 || r.Routes[1].Path != "/papers/*" || r.Port != 8080 {
		t.Fatalf("researcher: %+v", r)
	}
	if crm := c.Services[2]; crm.MinTier != trust.Untrusted || crm.Agent != "" {
		t.Fatalf("crm: %+v", crm)
	}
}

// TestParseRefuses: every bad catalogue is refused, naming the entry and
// the field.
func TestParseRefuses(t *testing.T) {
	const ok = "  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"]}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], weight: 3}\n", "weight"},
		{"unknown top-level key", "servics: []\n", "servics"},
		{"two documents", "services: []\n---\nservices: []\n", "one YAML document"},
		{"not YAML", "services: [\n", "services.yaml"},
		{"no name", "services:\n  - {hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"]}\n", "services[0]: name: required"},
		{"bad name", "services:\n  - {name: A_b, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"]}\n", "services[0] (A_b): name"},
		{"duplicate name", "services:\n" + ok + ok, "services[1] (a): name: \"a\" is also services[0]"},
		{"duplicate host across services", "services:\n" + ok + "  - {name: b, hosts: [A.mesh], port: 80, endpoints: [\"10.0.0.1:80\"]}\n", "services.yaml:3: services[1] (b): hosts[0]: \"a.mesh\" already belongs to service \"a\""},
		{"host twice", "services:\n  - {name: a, hosts: [a.mesh, a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"]}\n", "hosts[1]"},
		{"host with a port", "services:\n  - {name: a, hosts: [\"a.mesh:80\"], port: 80, endpoints: [\"10.0.0.1:80\"]}\n", "hosts[0]"},
		{"no hosts", "services:\n  - {name: a, port: 80, endpoints: [\"10.0.0.1:80\"]}\n", "hosts: at least one"},
		{"port zero", "services:\n  - {name: a, hosts: [a.mesh], endpoints: [\"10.0.0.1:80\"]}\n", "port: 0"},
		{"port too large", "services:\n  - {name: a, hosts: [a.mesh], port: 70000, endpoints: [\"10.0.0.1:80\"]}\n", "port: 70000"},
		{"port not a number", "services:\n  - {name: a, hosts: [a.mesh], port: http, endpoints: [\"10.0.0.1:80\"]}\n", "http"},
		{"no endpoints", "services:\n  - {name: a, hosts: [a.mesh], port: 80}\n", "endpoints: at least one"},
		{"endpoint without port", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1\"]}\n", "endpoints[0]: \"10.0.0.1\": expected host:port"},
		{"endpoint port out of range", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:0\"]}\n", "endpoints[0]"},
		{"endpoint bad host", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"bad_host:80\"]}\n", "endpoints[0]"},
		{"endpoint twice", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\", \"10.0.0.1:80\"]}\n", "endpoints[1]"},
		{"bad tier", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], minTier: root}\n", "services[0] (a): minTier: \"root\""},
		{"bad agent", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], agent: \"two words\"}\n", "agent"},
		{"action without verb", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], routes: [{path: /x, action: read}]}\n", "services.yaml:2: services[0] (a): routes[0].action: "},
		{"action with a comma", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], routes: [{path: /x, action: \"read:a,b\"}]}\n", "services.yaml:2: services[0] (a): routes[0].action: "},
		{"path without slash", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], routes: [{path: x, action: \"read:x\"}]}\n", "services.yaml:2: services[0] (a): routes[0].path: "},
		{"star inside a path", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], routes: [{path: /a*/b, action: \"read:x\"}]}\n", "'*' may only end"},
		{"unknown method", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], routes: [{method: BREW, path: /x, action: \"read:x\"}]}\n", "services.yaml:2: services[0] (a): routes[0].method: "},
		{"unknown protocol", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"]}\n  - {name: b, hosts: [b.mesh], port: 80, endpoints: [\"10.0.0.2:80\"],\n     protocol: grpc}\n", `services.yaml:4: services[1] (b): protocol: "grpc": expected mcp or a2a`},
		{"protocol in upper case", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], protocol: MCP}\n", `services.yaml:2: services[0] (a): protocol: "MCP": expected mcp or a2a`},
		{"protocol as a list", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], protocol: [mcp]}\n", "services.yaml:2: services[0] (a): cannot unmarshal !!seq into string"},
		{"route twice", "services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], routes: [{path: /x, action: \"read:x\"}, {path: /x, action: \"read:y\"}]}\n", "routes[1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("services.yaml", []byte(tc.yaml))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

// TestProtocolDeclared: a service's protocol is kept as declared, from the
// file and from a service the admin API stores; an unknown one is refused
// there too, naming the field.
func TestProtocolDeclared(t *testing.T) {
	c, err := Parse("services.yaml", []byte("services:\n"+
		"  - {name: mail, hosts: [mail.mesh], port: 80, endpoints: [\"10.0.0.1:80\"], protocol: mcp}\n"+
		"  - {name: planner, hosts: [planner.mesh], port: 80, endpoints: [\"10.0.0.2:80\"], protocol: a2a}\n"+
		"  - {name: crm, hosts: [crm.mesh], port: 80, endpoints: [\"10.0.0.3:80\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []agentproto.Protocol{agentproto.MCP, agentproto.A2A, ""} {
		if got := c.Services[i].Protocol; got != want {
			t.Errorf("services[%d].protocol = %q, want %q", i, got, want)
		}
	}
	bad := c.Services[0]
	bad.Protocol = "grpc"
	_, err = New([]Service{bad})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `services[0] (mail): protocol: "grpc": expected mcp or a2a`) {
		t.Fatalf("New: got %v, want the protocol refused", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "services: []\n"} {
		c, err := Parse("services.yaml", []byte(in))
		if err != nil || len(c.Services) != 0 {
			t.Fatalf("%q: %v %v", in, c, err)
		}
	}
}
