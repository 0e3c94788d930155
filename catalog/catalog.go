// Package catalog is MeshGuard's service catalogue (docs/xds.md): the
// services the xDS control plane configures Envoys for — their hosts,
// port, endpoints, the agent behind them, the minimum trust tier and the
// routes that map requests to actions.
//
// A catalogue comes from SERVICES_FILE (YAML) or the admin API. Parse is
// strict: an unknown key, a duplicate host, a bad endpoint, an action that
// is not verb:resource or a port out of range is refused, and nothing of
// the file is used. A refusal lists every problem (up to MaxErrors), each
// an Error naming its line, entry and field.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/internal/yamldoc"
	"github.com/meshguard/meshguard/trust"
)

// Limits: every limit is bounded (docs/xds.md).
const (
	MaxServices  = 1000
	MaxHosts     = 32 // per service
	MaxEndpoints = 256
	MaxRoutes    = 256
	maxPathLen   = 1024
	maxActionLen = 1024
)

// ErrInvalid wraps every error of a catalogue that cannot be used.
var ErrInvalid = errors.New("invalid service catalogue")

// Service is one entry of the catalogue.
type Service struct {
	Name      string     `yaml:"name" json:"name"`
	Hosts     []string   `yaml:"hosts" json:"hosts"`
	Port      int        `yaml:"port" json:"port"`
	Endpoints []string   `yaml:"endpoints" json:"endpoints"`
	Agent     string     `yaml:"agent,omitempty" json:"agent,omitempty"`
	MinTier   trust.Tier `yaml:"-" json:"minTier"`
	Routes    []Route    `yaml:"routes,omitempty" json:"routes,omitempty"`
	// Protocol is the agent protocol the service speaks, if any (mcp or
	// a2a, docs/mcp.md): its routes send the request body to ext_authz.
	Protocol agentproto.Protocol `yaml:"protocol,omitempty" json:"protocol,omitempty"`
}

// Route maps requests to an action: Method ("" for any) and Path (exact,
// or a prefix ending in '*').
type Route struct {
	Method string `yaml:"method,omitempty" json:"method,omitempty"`
	Path   string `yaml:"path" json:"path"`
	Action string `yaml:"action" json:"action"`
}

// Catalogue is a validated set of services, in the order given.
type Catalogue struct {
	Services []Service
}

// file is the YAML document: `services: [...]`.
type file struct {
	Services []service `yaml:"services"`
}

// service is Service as written, with the tier as text.
type service struct {
	Name      string   `yaml:"name"`
	Hosts     []string `yaml:"hosts"`
	Port      int      `yaml:"port"`
	Endpoints []string `yaml:"endpoints"`
	Agent     string   `yaml:"agent"`
	MinTier   string   `yaml:"minTier"`
	Routes    []Route  `yaml:"routes"`
	Protocol  string   `yaml:"protocol"`
}

// MaxFileBytes bounds a SERVICES_FILE.
const MaxFileBytes = 4 << 20

// Parse reads a catalogue from YAML. name is the file's name, for errors.
// A refusal is an ErrorList: every problem of the file (at most
// MaxErrors), each with its line, entry and field.
func Parse(name string, data []byte) (*Catalogue, error) {
	if len(data) > MaxFileBytes {
		return nil, ErrorList{{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}}
	}
	// The nodes first, for the lines of the problems found in the
	// decoded services, and to refuse a second document.
	var doc yaml.Node
	ndec := yaml.NewDecoder(bytes.NewReader(data))
	if err := yamldoc.Decode(ndec, &doc); err != nil && !errors.Is(err, io.EOF) {
		var p problems
		lines{}.decodeErrors(name, err, &p, nil)
		return nil, p.err(name)
	}
	if err := yamldoc.Decode(ndec, new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, ErrorList{{File: name, Msg: "one YAML document expected (services: [...])"}}
	}
	at := locate(&doc)
	// Then the strict decode: unknown keys and wrong types refused.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	var p problems
	dirty := make([]bool, len(at.items))
	if err := yamldoc.Decode(dec, &f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		at.decodeErrors(name, err, &p, dirty)
		if !errors.As(err, &te) || len(f.Services) != len(at.items) {
			// Not a partial decode of the entries: nothing more to check.
			return nil, p.err(name)
		}
	}
	services := make([]Service, 0, len(f.Services))
	for i, s := range f.Services {
		svc := Service{Name: s.Name, Hosts: s.Hosts, Port: s.Port, Endpoints: s.Endpoints, Agent: s.Agent, Routes: s.Routes, MinTier: trust.Untrusted,
			Protocol: agentproto.Protocol(s.Protocol)}
		if s.MinTier != "" && !dirty[i] {
			if t, err := trust.Parse(s.MinTier); err == nil {
				svc.MinTier = t
			} else {
				p.addf(name, at.line(i, key("minTier")), entry(i, s.Name), "minTier", "%s: expected untrusted, verified, trusted or privileged", quote(s.MinTier))
			}
		}
		services = append(services, svc)
	}
	c := check(services, dirty, &p, func(i int, f field, msg string) {
		p.add(&Error{File: name, Line: at.line(i, f), Entry: entry(i, services[i].Name), Field: f.String(), Msg: msg})
	}, name)
	if err := p.err(name); err != nil {
		return nil, err
	}
	return c, nil
}

// Origin says where services[i] comes from, for its errors: the file, or
// what else it came from ("stored service crm"), and its index in that
// file (-1 when not from a file).
type Origin func(i int) (file string, index int)

// New validates services into a Catalogue. Hosts are kept lower-cased.
func New(services []Service) (*Catalogue, error) {
	return NewFrom(services, nil)
}

// NewFrom is New with each error placed as origin says; nil places every
// service in the "service catalogue" at its index.
func NewFrom(services []Service, origin Origin) (*Catalogue, error) {
	if origin == nil {
		origin = func(i int) (string, int) { return "service catalogue", i }
	}
	var p problems
	c := check(services, nil, &p, func(i int, f field, msg string) {
		file, at := origin(i)
		e := &Error{File: file, Field: f.String(), Msg: msg}
		if at >= 0 {
			e.Entry = entry(at, services[i].Name)
		}
		p.add(e)
	}, "service catalogue")
	if err := p.err("service catalogue"); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates services, alone and across each other, reporting every
// problem; a skipped service (partly decoded) is neither checked nor
// checked against. It returns the catalogue, to be used only if nothing
// was reported.
func check(services []Service, skip []bool, p *problems, report func(i int, f field, msg string), file string) *Catalogue {
	if len(services) > MaxServices {
		p.addf(file, 0, "", "", "more than %d services", MaxServices)
		return nil
	}
	names := map[string]int{}
	hosts := map[string]string{}
	out := make([]Service, len(services))
	for i, s := range services {
		s.Hosts = lowered(s.Hosts)
		out[i] = s
		if skip != nil && skip[i] {
			continue
		}
		rep := func(f field, format string, args ...any) {
			if p.count() >= MaxErrors {
				p.more++ // counted, not formatted
				return
			}
			report(i, f, fmt.Sprintf(format, args...))
		}
		s.check(rep)
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				rep(key("name"), "%s is also services[%d]", quote(s.Name), j)
			} else {
				names[s.Name] = i
			}
		}
		if len(s.Hosts) > MaxHosts {
			continue // refused above; not worth comparing
		}
		own := map[string]bool{}
		for j, h := range s.Hosts {
			if own[h] {
				continue // listed twice: reported above
			}
			own[h] = true
			if other, dup := hosts[h]; dup {
				rep(elem("hosts", j), "%s already belongs to service %s", quote(h), quote(other))
				continue
			}
			hosts[h] = s.Name
		}
	}
	return &Catalogue{Services: out}
}

// maxQuoted bounds a value repeated in an error: a refusal lists up to
// MaxErrors of them, and an alias can repeat one long value many times.
const maxQuoted = 64

// quote quotes s, cut to maxQuoted runes.
func quote(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q… (%d bytes)", string([]rune(s)[:maxQuoted]), len(s))
}

func entry(i int, name string) string {
	if name == "" {
		return "services[" + strconv.Itoa(i) + "]"
	}
	return "services[" + strconv.Itoa(i) + "] (" + name + ")"
}

func lowered(hs []string) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = strings.ToLower(h)
	}
	return out
}

// namePattern is a DNS label: service names become Envoy cluster and
// route names.
var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

var methods = map[string]bool{"": true, "GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// check reports every problem of one service on its own; New checks
// across services.
func (s *Service) check(report func(f field, format string, args ...any)) {
	switch {
	case s.Name == "":
		report(key("name"), "required")
	case !namePattern.MatchString(s.Name):
		report(key("name"), "%s: expected a DNS label (lower-case letters, digits and '-', at most 63)", quote(s.Name))
	}
	switch {
	case len(s.Hosts) == 0:
		report(key("hosts"), "at least one host is required")
	case len(s.Hosts) > MaxHosts:
		report(key("hosts"), "more than %d", MaxHosts)
	default:
		seen := map[string]bool{}
		for j, h := range s.Hosts {
			switch {
			case !identity.ValidHost(h):
				report(elem("hosts", j), "%s: expected a host name without a port or trailing dot", quote(h))
			case seen[h]:
				report(elem("hosts", j), "%s is listed twice", quote(h))
			}
			seen[h] = true
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		report(key("port"), "%d: expected 1 to 65535", s.Port)
	}
	switch {
	case len(s.Endpoints) == 0:
		report(key("endpoints"), "at least one endpoint is required")
	case len(s.Endpoints) > MaxEndpoints:
		report(key("endpoints"), "more than %d", MaxEndpoints)
	default:
		seen := map[string]bool{}
		for j, e := range s.Endpoints {
			if err := checkEndpoint(e); err != nil {
				report(elem("endpoints", j), "%s: %s", quote(e), err)
			} else if seen[e] {
				report(elem("endpoints", j), "%s is listed twice", quote(e))
			}
			seen[e] = true
		}
	}
	if s.Agent != "" && !identity.ValidName(s.Agent) {
		report(key("agent"), "%s: not an agent name", quote(s.Agent))
	}
	if !s.MinTier.Valid() {
		report(key("minTier"), "unknown tier %d", s.MinTier)
	}
	if s.Protocol != "" && !engine.ValidProtocol(s.Protocol) {
		report(key("protocol"), "%s: expected mcp or a2a", quote(string(s.Protocol)))
	}
	if len(s.Routes) > MaxRoutes {
		report(key("routes"), "more than %d", MaxRoutes)
		return
	}
	seenRoute := map[[2]string]bool{}
	for j, r := range s.Routes {
		bad := false
		r.check(func(k, format string, args ...any) {
			bad = true
			report(sub("routes", j, k), format, args...)
		})
		if bad {
			continue // a bad route is not compared with the others
		}
		k := [2]string{r.Method, r.Path}
		if seenRoute[k] {
			report(elem("routes", j), "method %s and path %s are already routed", quote(r.Method), quote(r.Path))
		}
		seenRoute[k] = true
	}
}

// checkEndpoint accepts host:port, the host an IP address or a DNS name.
func checkEndpoint(e string) error {
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		return errors.New("expected host:port")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %s: expected 1 to 65535", quote(port))
	}
	if net.ParseIP(host) == nil && !identity.ValidHost(host) {
		return fmt.Errorf("host %s: expected an IP address or a lower-case host name", quote(host))
	}
	return nil
}

// check reports each bad key of the route: method, path, action.
func (r *Route) check(report func(key, format string, args ...any)) {
	if !methods[r.Method] {
		report("method", "%s: expected GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or none (any)", quote(r.Method))
	}
	switch {
	case !strings.HasPrefix(r.Path, "/"):
		report("path", "%s: must start with /", quote(r.Path))
	case len(r.Path) > maxPathLen:
		report("path", "longer than %d bytes", maxPathLen)
	case strings.Contains(strings.TrimSuffix(r.Path, "*"), "*"):
		report("path", "%s: '*' may only end a prefix", quote(r.Path))
	case edge.HasSpaceOrControl(r.Path):
		report("path", "%s: no spaces or control characters", quote(r.Path))
	}
	verb, resource, ok := strings.Cut(r.Action, ":")
	if !ok || verb == "" || resource == "" || len(r.Action) > maxActionLen ||
		edge.HasSpaceOrControl(r.Action) || strings.Contains(r.Action, ",") {
		report("action", "%s: expected verb:resource, without spaces, commas or control characters", quote(r.Action))
	}
}
