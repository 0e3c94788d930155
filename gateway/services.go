package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/meshguard/meshguard/catalog"
)

// Services is the service catalogue in force (PROXY_SERVICES): the gateway
// looks every request's service up in it, so a change to the catalogue is
// seen by the next request.
type Services interface {
	// Service returns the catalogue's service named name.
	Service(name string) (*catalog.Service, bool)
}

// upstream is where an allowed request goes, and what the engine is told
// of it.
type upstream struct {
	url *url.URL // scheme, the address dialled first, base path
	// host is the Host header sent and the engine's Host, which decides
	// the route mapping and whether the request hands a task to an agent.
	host string
	// endpoints are a service's addresses, tried from url's on when one
	// refuses the connection (failover); nil for PROXY_TARGET.
	endpoints []string
	start     int
	name      string // for the log: the service's name, or the target
}

// maxNameShown bounds the service name quoted back in a 404: a DNS label
// is at most 63 bytes, anything longer is not a service anyway.
const maxNameShown = 64

// service resolves `/<service>/<rest>` (path as upstreamPath returns it)
// to the catalogue's service and the path it is forwarded with: <rest>,
// "/" when there is none. Only this path segment picks the service: never
// the Host header, which names the gateway.
func (g *Gateway) service(path string) (*catalog.Service, string, int, string) {
	name, rest, _ := strings.Cut(path[1:], "/") // path starts with "/"
	if name == "" {
		return nil, "", http.StatusNotFound, "name a service of the catalogue: " + Prefix + "/<service>/…"
	}
	s, ok := g.services.Service(name)
	if !ok || s == nil || len(s.Hosts) == 0 || len(s.Endpoints) == 0 {
		if len(name) > maxNameShown {
			name = name[:maxNameShown] + "…"
		}
		return nil, "", http.StatusNotFound, fmt.Sprintf("no service %q in the service catalogue", name)
	}
	return s, "/" + rest, 0, ""
}

// serviceUpstream is where a request to s goes: the Host its proxy would
// see (the first host, with the port unless it is HTTP's 80), decided on
// exactly as it is sent, as PROXY_TARGET's host is; one of its
// endpoints, round robin over the gateway's requests. The catalogue has no
// TLS setting: the gateway speaks plain HTTP to a service's endpoints.
func (g *Gateway) serviceUpstream(s *catalog.Service) *upstream {
	hostPort := net.JoinHostPort(s.Hosts[0], strconv.Itoa(s.Port))
	host := hostPort
	if s.Port == 80 {
		host = s.Hosts[0]
	}
	start := int(g.next.Add(1) % uint64(len(s.Endpoints)))
	return &upstream{
		url:       &url.URL{Scheme: "http", Host: s.Endpoints[start]},
		host:      host,
		endpoints: s.Endpoints, start: start, name: s.Name,
	}
}

// failover sends a service's request to its next endpoint when one
// refuses the connection: nothing of the request was sent (unsent proves
// it), so it is safe to send it again, whatever its method. At most one
// try per endpoint; the last error goes to the ErrorHandler (502).
type failover struct {
	next http.RoundTripper
	log  func(name, endpoint string, err error)
}

func (t *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	f := forwardOf(req.Context())
	if f == nil || len(f.up.endpoints) < 2 {
		return t.next.RoundTrip(req)
	}
	eps := f.up.endpoints
	try := req
	var body *unsent
	var cur *tryBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &unsent{rc: req.Body}
		cur = &tryBody{b: body}
		try = req.WithContext(req.Context()) // a shallow copy of our own
		try.Body = cur
	}
	for i := 0; ; i++ {
		res, err := t.next.RoundTrip(try)
		if err == nil || i+1 == len(eps) || !errors.Is(err, syscall.ECONNREFUSED) || body.sent() || req.Context().Err() != nil {
			cur.finish()
			return res, err
		}
		t.log(f.up.name, try.URL.Host, err)
		u := *req.URL
		u.Host = eps[(f.up.start+i+1)%len(eps)]
		try = req.WithContext(req.Context())
		try.URL = &u
		if body != nil {
			// The failed try's transport may still Close its body, even
			// after the next try began reading it: that Close is not ours.
			cur.stale.Store(true)
			cur = &tryBody{b: body}
			try.Body = cur
		}
	}
}

// unsent is a request body sent by one try or more, which knows whether
// any of it was read (then it cannot be sent again).
type unsent struct {
	rc   io.ReadCloser
	read atomic.Bool
	once sync.Once
}

func (b *unsent) close() error {
	var err error
	b.once.Do(func() { err = b.rc.Close() })
	return err
}

// sent reports whether any of the body may have gone out (nil: no body).
func (b *unsent) sent() bool { return b != nil && b.read.Load() }

// tryBody is the body one try's transport gets. Its Close closes the body
// only when no other try can need it: some of it was read, or this try
// is the last one (finish). The Close of a try that was superseded
// (stale), which a transport may call late, does nothing.
type tryBody struct {
	b     *unsent
	stale atomic.Bool // a later try has the body
	final atomic.Bool // no try follows this one
	asked atomic.Bool // its transport asked to Close
}

func (t *tryBody) Read(p []byte) (int, error) {
	t.b.read.Store(true)
	return t.b.rc.Read(p)
}

func (t *tryBody) Close() error {
	if t.stale.Load() {
		return nil
	}
	t.asked.Store(true) // before final is read: finish sees one or the other
	if t.final.Load() || t.b.read.Load() {
		return t.b.close()
	}
	return nil
}

// finish marks t the last try, closing the body if its transport already
// asked to (nil: no body).
func (t *tryBody) finish() {
	if t == nil {
		return
	}
	t.final.Store(true)
	if t.asked.Load() {
		_ = t.b.close()
	}
}
