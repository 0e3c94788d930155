package xds

import (
	"fmt"
	"net"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// UpstreamTLS is how Envoys reach MeshGuard's ports when those serve TLS:
// the files are paths on the Envoys (a mounted secret), not on MeshGuard.
type UpstreamTLS struct {
	// CAFile holds the CAs that sign MeshGuard's certificate.
	CAFile string
	// Host is the name (or IP) MeshGuard's certificate must carry: the
	// host of XDS_AUTHZ_ADDRESS or XDS_HTTP_ADDRESS. Envoy checks the
	// certificate's SANs against it (Envoy checks no name by default).
	Host string
	// CertFile and KeyFile, if set, are the Envoy's client certificate
	// (MeshGuard's TLS_CLIENT_CA_FILE then requires one).
	CertFile, KeyFile string
}

// SecureMeshGuardClusters makes the clusters named speak TLS to MeshGuard
// as t says. It is applied after Build so the catalogue's resources and
// the transport security of MeshGuard's own clusters stay apart.
func (r *Resources) SecureMeshGuardClusters(t *UpstreamTLS, names ...string) error {
	if t.CAFile == "" || t.Host == "" || (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("xds: MeshGuard's ports serve TLS: the Envoys need a CA file (XDS_ENVOY_CA_FILE) and MeshGuard's host, and a client certificate with its key or neither")
	}
	san := &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: t.Host}}}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: file(t.CAFile), MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san},
		}},
	}}
	if net.ParseIP(t.Host) != nil {
		san.SanType = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
	} else {
		ctx.Sni = t.Host
	}
	if t.CertFile != "" {
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: file(t.CertFile), PrivateKey: file(t.KeyFile)}}
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for _, c := range r.Clusters {
		if !want[c.GetName()] {
			continue
		}
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
		if err := c.ValidateAll(); err != nil {
			return fmt.Errorf("xds: cluster %s with TLS: %w", c.GetName(), err)
		}
	}
	return nil
}

func file(name string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: name}}
}
