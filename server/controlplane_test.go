package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/internal/tlsfiles/tlstest"
)

// firstClusters opens an ADS stream on conn in ctx and returns the code
// of its first answer: OK when it carried the clusters.
func firstClusters(ctx context.Context, t *testing.T, conn grpc.ClientConnInterface) codes.Code {
	t.Helper()
	code, _ := firstClustersResp(ctx, t, conn)
	return code
}

// firstClustersResp is firstClusters with the answer.
func firstClustersResp(ctx context.Context, t *testing.T, conn grpc.ClientConnInterface) (codes.Code, *discoveryv3.DiscoveryResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return status.Code(err), nil
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "probe"}, TypeUrl: resourcev3.ClusterType}); err != nil {
		_, err = stream.Recv() // the status is in the answer
		return status.Code(err), nil
	}
	resp, err := stream.Recv()
	if err != nil {
		return status.Code(err), nil
	}
	if len(resp.GetResources()) == 0 {
		t.Fatalf("an answer without clusters: %v", resp)
	}
	return codes.OK, resp
}

// TestXDSRequiresAListedProxy: an ADS stream, or a fetch of the per-type
// services, is refused with Unauthenticated unless it carries the bearer
// credential of a proxy PROXIES_FILE lists; a proxy removed from the file
// is refused from then on. ext_authz's Check stays open to Envoys.
func TestXDSRequiresAListedProxy(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(file, []byte(servicesV1), 0o644); err != nil {
		t.Fatal(err)
	}
	const other = "mgp_another-proxy-credential-0123456789"
	var proxies string
	r := start(t, func(c *config.Config) {
		c.ServicesFile = file
		proxies = writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken}, testProxy{name: "other", token: other})
		c.ProxyAuth.ProxiesFile = proxies
	})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"no credential", ctx, codes.Unauthenticated},
		{"an unknown credential", asProxy(ctx, "mgp_guessed-credential-0123456789abcdef"), codes.Unauthenticated},
		{"the admin token", asProxy(ctx, r.adminToken(t)), codes.Unauthenticated},
		{"a listed proxy's digest instead of its credential", asProxy(ctx, strings.TrimPrefix(digestOf(testProxyToken), "sha256:")), codes.Unauthenticated},
		{"a listed proxy's credential", asProxy(ctx, testProxyToken), codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := firstClusters(tc.ctx, t, r.grpc); got != tc.want {
				t.Fatalf("ADS: %v, want %v", got, tc.want)
			}
			_, err := clusterservice.NewClusterDiscoveryServiceClient(r.grpc).FetchClusters(tc.ctx, &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "probe"}})
			if got := status.Code(err); (tc.want == codes.Unauthenticated) != (got == codes.Unauthenticated) {
				t.Fatalf("FetchClusters: %v, want %v", err, tc.want)
			}
		})
	}

	// ext_authz needs no proxy credential (it decides on the request's
	// own credentials and reveals no configuration).
	if resp := r.check(t, "not-a-token", "GET", "/docs/a"); resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("Check without a proxy credential: %v", resp)
	}

	// The operator removes the other proxy: its credential opens nothing.
	if got := firstClusters(asProxy(ctx, other), t, r.grpc); got != codes.OK {
		t.Fatalf("before its removal: %v", got)
	}
	writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken})
	eventually(t, "the removed proxy refused", func() bool {
		return firstClusters(asProxy(ctx, other), t, r.grpc) == codes.Unauthenticated
	})
	if got := firstClusters(asProxy(ctx, testProxyToken), t, r.grpc); got != codes.OK {
		t.Fatalf("the proxy still listed: %v", got)
	}
}

// TestXDSInsecureOptOut: XDS_INSECURE_ALLOW_UNAUTHENTICATED lets any client
// in, and serve says so loudly at start.
func TestXDSInsecureOptOut(t *testing.T) {
	var logs syncBuffer
	cfg := configWith(t, func(c *config.Config) { c.ProxyAuth.InsecureAllowUnauthenticated = true })
	r := runWith(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got := firstClusters(context.Background(), t, r.grpc); got != codes.OK {
		t.Fatalf("ADS without a credential: %v", got)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "XDS_INSECURE_ALLOW_UNAUTHENTICATED is set") {
		t.Fatalf("no warning at start:\n%s", logs.String())
	}
}

// TestXDSOverMutualTLS: with TLS_CLIENT_CA_FILE, the gRPC port takes only
// clients with a certificate of that CA, and ADS only those whose
// certificate names a listed proxy (its SPIFFE id); ext_authz takes any
// client the CA signed. The HTTP port serves TLS too with TLS_PORTS, and a
// replaced server certificate is served from the next connection on.
func TestXDSOverMutualTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh CA")
	files := ca.WriteServer(t, tlstest.Loopback("meshguard-1"))
	const spiffe = "spiffe://cluster.local/ns/agents/sa/edge"
	r := start(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA, GRPC: true,
			EnvoyCAFile: "/etc/envoy/tls/ca.crt", EnvoyCertFile: "/etc/envoy/tls/tls.crt", EnvoyKeyFile: "/etc/envoy/tls/tls.key"}
		c.ProxyAuth.ProxiesFile = writeProxies(t, files.Dir, testProxy{name: "edge", identities: []string{spiffe}})
	})
	dial := func(t *testing.T, cert *tls.Certificate) *grpc.ClientConn {
		t.Helper()
		cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		conn, err := grpc.NewClient(r.addrs.GRPC, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	edge := ca.Pair(t, tlstest.Leaf{CommonName: "edge", URIs: []string{spiffe}, Client: true})
	stranger := ca.Pair(t, tlstest.Leaf{CommonName: "edge", URIs: []string{"spiffe://cluster.local/ns/agents/sa/other"}, Client: true})
	foreign := tlstest.NewCA(t, "another CA").Pair(t, tlstest.Leaf{CommonName: "edge", URIs: []string{spiffe}, Client: true})
	for _, tc := range []struct {
		name      string
		cert      *tls.Certificate
		ads       codes.Code
		checkOpen bool
	}{
		{"no client certificate", nil, codes.Unavailable, false},
		{"a certificate of another CA naming the proxy", &foreign, codes.Unavailable, false},
		{"a certificate of the CA naming no listed proxy", &stranger, codes.Unauthenticated, true},
		{"the proxy's certificate", &edge, codes.OK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, tc.cert)
			if got := firstClusters(context.Background(), t, conn); got != tc.ads {
				t.Fatalf("ADS: %v, want %v", got, tc.ads)
			}
			_, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), checkRequest("not-a-token", "GET", "/docs/a"))
			if (err == nil) != tc.checkOpen {
				t.Fatalf("Check: %v, want open=%v", err, tc.checkOpen)
			}
		})
	}
	// The cluster xDS gives Envoys back to MeshGuard's gRPC port speaks
	// mTLS, checking MeshGuard's certificate.
	_, resp := firstClustersResp(context.Background(), t, dial(t, &edge))
	var authz clusterv3.Cluster
	for _, a := range resp.GetResources() {
		if err := a.UnmarshalTo(&authz); err != nil {
			t.Fatal(err)
		}
		if authz.GetName() == "meshguard_authz" {
			break
		}
	}
	var up tlsv3.UpstreamTlsContext
	if err := authz.GetTransportSocket().GetTypedConfig().UnmarshalTo(&up); err != nil {
		t.Fatalf("meshguard_authz has no TLS: %v", err)
	}
	vc := up.GetCommonTlsContext().GetValidationContext()
	if vc.GetTrustedCa().GetFilename() != "/etc/envoy/tls/ca.crt" || len(vc.GetMatchTypedSubjectAltNames()) != 1 ||
		up.GetCommonTlsContext().GetTlsCertificates()[0].GetCertificateChain().GetFilename() != "/etc/envoy/tls/tls.crt" {
		t.Fatalf("meshguard_authz's TLS: %v", &up)
	}

	// A plaintext client gets nowhere.
	if got := firstClusters(asProxy(context.Background(), testProxyToken), t, r.grpc); got != codes.Unavailable {
		t.Fatalf("plaintext ADS: %v", got)
	}

	// cert-manager renews the server certificate.
	c2, k2 := ca.Issue(t, tlstest.Loopback("meshguard-2"))
	tlstest.Write(t, files.Cert, c2)
	tlstest.Write(t, files.Key, k2)
	conn, err := tls.Dial("tcp", r.addrs.GRPC, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{edge}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "meshguard-2" {
		t.Fatalf("after renewal the server presents %q", cn)
	}
}

// TestHTTPPortOverTLS: TLS_PORTS=grpc,http serves the HTTP API over TLS
// (HTTP/2 and HTTP/1.1), and plaintext HTTP no longer answers.
func TestHTTPPortOverTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh CA")
	files := ca.WriteServer(t, tlstest.Loopback("meshguard"))
	cfg := configWith(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: files.Cert, KeyFile: files.Key, GRPC: true, HTTP: true, EnvoyCAFile: "/etc/envoy/tls/ca.crt"}
		c.AdminToken = "tls-test-admin-token-0123456789"
	})
	r := run(t, cfg)
	for _, h2 := range []bool{false, true} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}, ForceAttemptHTTP2: h2}}
		res, err := hc.Get("https://" + r.addrs.HTTP + "/health")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Fatalf("GET /health over TLS (h2 %v): %d %s", h2, res.StatusCode, res.Proto)
		}
	}
	if res, err := http.Get("http://" + r.addrs.HTTP + "/health"); err == nil && res.StatusCode == 200 {
		res.Body.Close()
		t.Fatal("plaintext HTTP still answers")
	}
}

// TestFilterCredentialIsScopedToItsProxy: each proxy's ADS stream carries
// a wasm filter credential of its own; it opens /v1/filter/*, the records
// shipped with it are marked with its proxy, and it stops opening anything
// once its proxy leaves PROXIES_FILE, while another proxy's goes on.
func TestFilterCredentialIsScopedToItsProxy(t *testing.T) {
	dir := t.TempDir()
	const tokenB = "mgp_proxy-b-credential-0123456789abcdef"
	var proxies string
	r := start(t, func(c *config.Config) {
		c.WasmFilterPath = "/etc/envoy/meshguard-filter.wasm"
		proxies = writeProxies(t, dir, testProxy{name: "proxy-a", token: testProxyToken}, testProxy{name: "proxy-b", token: tokenB})
		c.ProxyAuth.ProxiesFile = proxies
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	credA := watchFilterConfigAs(ctx, t, r, "node-a", testProxyToken)().MeshGuard.Token
	credB := watchFilterConfigAs(ctx, t, r, "node-b", tokenB)().MeshGuard.Token
	if credA == credB || !strings.HasPrefix(credA, "mgf2_") {
		t.Fatalf("credentials %q and %q", credA, credB)
	}
	get := func(cred string) int {
		req, _ := http.NewRequest("GET", "http://"+r.addrs.HTTP+filterprotocol.ConfigPath, nil)
		req.Header.Set(filterprotocol.HeaderFilterToken, cred)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if a, b := get(credA), get(credB); a != 200 || b != 200 {
		t.Fatalf("GET %s: %d, %d", filterprotocol.ConfigPath, a, b)
	}

	// A record shipped with A's credential is A's, whatever it claims.
	rec := audit.Record{Timestamp: time.Now(), DecisionID: "dec_from_a", Action: "read:docs", Method: "GET", Path: "/docs",
		Host: "docs.mesh", Decision: "deny", Status: 401, Reason: "invalid_token", Source: "wasm", Mode: "enforce", Proxy: "proxy-b"}
	body, _ := json.Marshal(filterprotocol.AuditBatch{Records: []audit.Record{rec}})
	req, _ := http.NewRequest("POST", "http://"+r.addrs.HTTP+filterprotocol.AuditPath, bytes.NewReader(body))
	req.Header.Set(filterprotocol.HeaderFilterToken, credA)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("POST %s: %d", filterprotocol.AuditPath, res.StatusCode)
	}
	eventually(t, "the shipped record, marked with its proxy", func() bool {
		page, err := r.admin.QueryAudit(ctx, client.AuditFilter{})
		for _, got := range page.Records {
			if got.DecisionID == "dec_from_a" {
				if got.Proxy != "proxy-a" {
					t.Fatalf("the record is marked %q, want proxy-a", got.Proxy)
				}
				return err == nil
			}
		}
		return false
	})
	if v, err := r.admin.VerifyAudit(ctx); err != nil || !v.OK {
		t.Fatalf("the chain with a marked record: %+v, %v", v, err)
	}

	// Proxy A is revoked.
	writeProxies(t, dir, testProxy{name: "proxy-b", token: tokenB})
	eventually(t, "A's filter credential refused", func() bool { return get(credA) == 401 })
	if b := get(credB); b != 200 {
		t.Fatalf("B's credential after A's revocation: %d", b)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPrincipalsOnlyFromListedProxies: an agent bound to a SPIFFE ID is
// that agent when a CheckRequest reports it as the source principal — but
// only when the Check comes from a proxy PROXIES_FILE lists. Anyone who
// reaches the gRPC port can write a CheckRequest naming any principal; from
// them it is ignored, so without a token the request is a 401.
func TestPrincipalsOnlyFromListedProxies(t *testing.T) {
	dir := t.TempDir()
	r := start(t, func(c *config.Config) {
		c.ProxyAuth.ProxiesFile = writeProxies(t, dir, testProxy{name: testProxyName, token: testProxyToken})
	})
	const id = "spiffe://cluster.local/ns/research/sa/reader"
	if _, err := r.admin.CreateAgent(context.Background(), api.CreateAgentRequest{Name: "reader", TrustTier: "verified", Tags: []string{"reader"}, SPIFFEIDs: []string{id}}); err != nil {
		t.Fatal(err)
	}
	req := checkRequest("", "GET", "/docs/a")
	delete(req.Attributes.Request.Http.Headers, "authorization")
	req.Attributes.Source.Principal = id
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want int32
	}{
		{"any caller", context.Background(), 401},
		{"a caller with a guessed credential", asProxy(context.Background(), "mgp_guessed-credential-0123456789abcdef"), 401},
		{"a listed proxy", asProxy(context.Background(), testProxyToken), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := authv3.NewAuthorizationClient(r.grpc).Check(tc.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetDeniedResponse().GetStatus().GetCode(); int32(got) != tc.want {
				t.Fatalf("status %v, want %d (0: allowed): %v", got, tc.want, resp)
			}
		})
	}
}

// TestGatewayOverMutualTLS: with TLS_PORTS=http and TLS_CLIENT_CA_FILE,
// serve's gateway reads the caller's identity from its verified client
// certificate: an agent bound to that SPIFFE ID passes without a token,
// reaching the upstream as itself.
func TestGatewayOverMutualTLS(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.Header.Get(engine.HeaderAgentName))
	}))
	t.Cleanup(up.Close)
	ca := tlstest.NewCA(t, "mesh CA")
	files := ca.WriteServer(t, tlstest.Loopback("meshguard"))
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	tlstest.Write(t, caFile, ca.PEM)
	cfg := configWith(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: caFile, GRPC: true, HTTP: true}
		c.AdminToken = "tls-test-admin-token-0123456789"
		c.ProxyTarget = up.URL
		c.Answer = engine.AnswerAgentName // what the upstream greets
	})
	r := run(t, cfg)
	const id = "spiffe://cluster.local/ns/research/sa/reader"
	do := func(t *testing.T, leaf tlstest.Leaf, req *http.Request) (int, string) {
		t.Helper()
		pair := ca.Pair(t, leaf)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pair}}}}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	admin, _ := http.NewRequest("POST", "https://"+r.addrs.HTTP+"/admin/agents", strings.NewReader(`{"name":"reader","trustTier":"verified","tags":["reader"],"spiffeIds":["`+id+`"]}`))
	admin.Header.Set("X-Admin-Token", cfg.AdminToken)
	admin.Header.Set("Content-Type", "application/json")
	if status, body := do(t, tlstest.Leaf{CommonName: "operator", Client: true}, admin); status != 201 {
		t.Fatalf("creating the agent: %d %s", status, body)
	}
	for _, tc := range []struct {
		name   string
		leaf   tlstest.Leaf
		status int
	}{
		{"the bound workload", tlstest.Leaf{CommonName: "reader", URIs: []string{id}, Client: true}, 200},
		{"another workload", tlstest.Leaf{CommonName: "other", URIs: []string{"spiffe://cluster.local/ns/x/sa/other"}, Client: true}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://"+r.addrs.HTTP+"/proxy/docs/a", nil)
			status, body := do(t, tc.leaf, req)
			if status != tc.status || tc.status == 200 && body != "hello reader" {
				t.Fatalf("%d %q, want %d", status, body, tc.status)
			}
		})
	}
}
