// Package catalog is MeshGuard's service catalogue (docs/xds.md): the
// services the xDS control plane configures Envoys for — their hosts,
// port, endpoints, the agent behind them, the minimum trust tier and the
// routes that map requests to actions.
//
// A catalogue comes from SERVICES_FILE (YAML) or the admin API. Parse is
// strict: an unknown key, a duplicate host, a bad endpoint, an action that
// is not verb:resource or a port out of range is refused with an error
// that names the entry and the field, and nothing of the file is used.
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

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
	"github.com/meshguard/meshguard/wire"
	"github.com/meshguard/meshguard/yamldoc"
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
}

// MaxFileBytes bounds a SERVICES_FILE.
const MaxFileBytes = 4 << 20

// Parse reads a catalogue from YAML. name is the file's name, for errors.
func Parse(name string, data []byte) (*Catalogue, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrInvalid, name, MaxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := yamldoc.Decode(dec, &f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalid, name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: one YAML document expected (services: [...])", ErrInvalid, name)
	}
	services := make([]Service, 0, len(f.Services))
	for _, s := range f.Services {
		svc := Service{Name: s.Name, Hosts: s.Hosts, Port: s.Port, Endpoints: s.Endpoints, Agent: s.Agent, Routes: s.Routes, MinTier: trust.Untrusted}
		if s.MinTier != "" {
			t, err := trust.Parse(s.MinTier)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %s: minTier: %q: expected untrusted, verified, trusted or privileged", ErrInvalid, name, entry(len(services), s.Name), s.MinTier)
			}
			svc.MinTier = t
		}
		services = append(services, svc)
	}
	c, err := New(services)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// New validates services into a Catalogue. Hosts are kept lower-cased.
func New(services []Service) (*Catalogue, error) {
	if len(services) > MaxServices {
		return nil, fmt.Errorf("%w: more than %d services", ErrInvalid, MaxServices)
	}
	names := map[string]int{}
	hosts := map[string]string{}
	out := make([]Service, len(services))
	for i, s := range services {
		s.Hosts = lowered(s.Hosts)
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, entry(i, s.Name), err)
		}
		if j, dup := names[s.Name]; dup {
			return nil, fmt.Errorf("%w: %s: name: %q is also services[%d]", ErrInvalid, entry(i, s.Name), s.Name, j)
		}
		names[s.Name] = i
		for _, h := range s.Hosts {
			if other, dup := hosts[h]; dup {
				return nil, fmt.Errorf("%w: %s: hosts: %q already belongs to service %q", ErrInvalid, entry(i, s.Name), h, other)
			}
			hosts[h] = s.Name
		}
		out[i] = s
	}
	return &Catalogue{Services: out}, nil
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

// validate checks one service on its own; New checks across services.
func (s *Service) validate() error {
	switch {
	case s.Name == "":
		return errors.New("name: required")
	case !namePattern.MatchString(s.Name):
		return fmt.Errorf("name: %q: expected a DNS label (lower-case letters, digits and '-', at most 63)", s.Name)
	case len(s.Hosts) == 0:
		return errors.New("hosts: at least one host is required")
	case len(s.Hosts) > MaxHosts:
		return fmt.Errorf("hosts: more than %d", MaxHosts)
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("port: %d: expected 1 to 65535", s.Port)
	case len(s.Endpoints) == 0:
		return errors.New("endpoints: at least one endpoint is required")
	case len(s.Endpoints) > MaxEndpoints:
		return fmt.Errorf("endpoints: more than %d", MaxEndpoints)
	case len(s.Routes) > MaxRoutes:
		return fmt.Errorf("routes: more than %d", MaxRoutes)
	case !s.MinTier.Valid():
		return fmt.Errorf("minTier: unknown tier %d", s.MinTier)
	}
	seenHost := map[string]bool{}
	for j, h := range s.Hosts {
		if !identity.ValidHost(h) {
			return fmt.Errorf("hosts[%d]: %q: expected a host name without a port or trailing dot", j, h)
		}
		if seenHost[h] {
			return fmt.Errorf("hosts[%d]: %q is listed twice", j, h)
		}
		seenHost[h] = true
	}
	seenEP := map[string]bool{}
	for j, e := range s.Endpoints {
		if err := checkEndpoint(e); err != nil {
			return fmt.Errorf("endpoints[%d]: %q: %w", j, e, err)
		}
		if seenEP[e] {
			return fmt.Errorf("endpoints[%d]: %q is listed twice", j, e)
		}
		seenEP[e] = true
	}
	if s.Agent != "" && !identity.ValidName(s.Agent) {
		return fmt.Errorf("agent: %q: not an agent name", s.Agent)
	}
	seenRoute := map[[2]string]bool{}
	for j, r := range s.Routes {
		if err := r.validate(); err != nil {
			return fmt.Errorf("routes[%d]: %w", j, err)
		}
		k := [2]string{r.Method, r.Path}
		if seenRoute[k] {
			return fmt.Errorf("routes[%d]: method %q and path %q are already routed", j, r.Method, r.Path)
		}
		seenRoute[k] = true
	}
	return nil
}

// checkEndpoint accepts host:port, the host an IP address or a DNS name.
func checkEndpoint(e string) error {
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		return errors.New("expected host:port")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q: expected 1 to 65535", port)
	}
	if net.ParseIP(host) == nil && !identity.ValidHost(host) {
		return fmt.Errorf("host %q: expected an IP address or a lower-case host name", host)
	}
	return nil
}

func (r *Route) validate() error {
	if !methods[r.Method] {
		return fmt.Errorf("method: %q: expected GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or none (any)", r.Method)
	}
	switch {
	case !strings.HasPrefix(r.Path, "/"):
		return fmt.Errorf("path: %q: must start with /", r.Path)
	case len(r.Path) > maxPathLen:
		return fmt.Errorf("path: longer than %d bytes", maxPathLen)
	case strings.Contains(strings.TrimSuffix(r.Path, "*"), "*"):
		return fmt.Errorf("path: %q: '*' may only end a prefix", r.Path)
	case wire.HasSpaceOrControl(r.Path):
		return fmt.Errorf("path: %q: no spaces or control characters", r.Path)
	}
	verb, resource, ok := strings.Cut(r.Action, ":")
	if !ok || verb == "" || resource == "" || len(r.Action) > maxActionLen ||
		wire.HasSpaceOrControl(r.Action) || strings.Contains(r.Action, ",") {
		return fmt.Errorf("action: %q: expected verb:resource, without spaces, commas or control characters", r.Action)
	}
	return nil
}
