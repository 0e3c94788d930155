package xds

import (
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/meshguard/meshguard/catalog"
)

// TestSecureMeshGuardClusters: MeshGuard's own clusters get TLS checking
// MeshGuard's name (SNI and a DNS SAN) or IP (an IP SAN), with the
// Envoy's certificate for mTLS; the catalogue's clusters are untouched;
// an incomplete setting is refused.
func TestSecureMeshGuardClusters(t *testing.T) {
	c := &catalog.Catalogue{Services: []catalog.Service{{Name: "orders", Hosts: []string{"orders.mesh"}, Port: 8080, Endpoints: []string{"10.0.0.7:8080"}}}}
	for _, tc := range []struct {
		name, host string
		san        tlsv3.SubjectAltNameMatcher_SanType
		sni        string
	}{
		{"a DNS name", "meshguard.meshguard-system.svc", tlsv3.SubjectAltNameMatcher_DNS, "meshguard.meshguard-system.svc"},
		{"an IP", "10.0.0.2", tlsv3.SubjectAltNameMatcher_IP_ADDRESS, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Build(c, Options{ListenerPort: 10000, AuthzHost: tc.host, AuthzPort: 3101})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.SecureMeshGuardClusters(&UpstreamTLS{CAFile: "/tls/ca.crt", Host: tc.host, CertFile: "/tls/tls.crt", KeyFile: "/tls/tls.key"}, AuthzCluster); err != nil {
				t.Fatal(err)
			}
			for _, cl := range r.Clusters {
				if cl.GetName() != AuthzCluster {
					if cl.GetTransportSocket() != nil {
						t.Fatalf("the catalogue's cluster %s got TLS", cl.GetName())
					}
					continue
				}
				var up tlsv3.UpstreamTlsContext
				if err := cl.GetTransportSocket().GetTypedConfig().UnmarshalTo(&up); err != nil {
					t.Fatal(err)
				}
				san := up.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()
				if up.GetSni() != tc.sni || len(san) != 1 || san[0].GetSanType() != tc.san || san[0].GetMatcher().GetExact() != tc.host ||
					up.GetCommonTlsContext().GetTlsCertificates()[0].GetPrivateKey().GetFilename() != "/tls/tls.key" {
					t.Fatalf("TLS %v", &up)
				}
			}
		})
	}
	r, _ := Build(c, Options{ListenerPort: 10000, AuthzHost: "meshguard", AuthzPort: 3101})
	for name, bad := range map[string]UpstreamTLS{
		"no CA":              {Host: "meshguard"},
		"no host":            {CAFile: "/tls/ca.crt"},
		"a cert without key": {CAFile: "/tls/ca.crt", Host: "meshguard", CertFile: "/tls/tls.crt"},
	} {
		if err := r.SecureMeshGuardClusters(&bad, AuthzCluster); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
