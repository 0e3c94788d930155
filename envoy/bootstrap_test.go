package envoy

import (
	"os"
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/meshguard/meshguard/envoy/envoytest"
)

// TestBootstraps: each file decodes strictly into the Bootstrap proto —
// unknown fields refused, every typed config resolved to its message —
// passes ValidateAll, and fails closed (envoytest): the static file's
// listener asks MeshGuard first and denies when it cannot; the xDS files
// take their listeners from MeshGuard, whose are checked in package xds.
func TestBootstraps(t *testing.T) {
	for _, name := range []string{"envoy-static.yaml", "envoy-xds.yaml", "envoy-xds-mtls.yaml"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseBootstrap(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range envoytest.CheckBootstrap(b) {
				t.Error(v)
			}
		})
	}
}

// TestXDSBootstrapsAuthenticate: each xDS bootstrap reaches MeshGuard over
// TLS checking its certificate, and authenticates: with a bearer credential
// in the ADS stream's metadata, or with a client certificate.
func TestXDSBootstrapsAuthenticate(t *testing.T) {
	for _, tc := range []struct {
		file   string
		bearer bool
	}{{"envoy-xds.yaml", true}, {"envoy-xds-mtls.yaml", false}} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseBootstrap(data)
			if err != nil {
				t.Fatal(err)
			}
			ads := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0]
			md := ads.GetInitialMetadata()
			hasBearer := len(md) == 1 && md[0].GetKey() == "authorization" && strings.HasPrefix(md[0].GetValue(), "Bearer mgp_")
			var up tlsv3.UpstreamTlsContext
			for _, c := range b.GetStaticResources().GetClusters() {
				if c.GetName() == ads.GetEnvoyGrpc().GetClusterName() {
					if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&up); err != nil {
						t.Fatalf("the xDS cluster has no TLS: %v", err)
					}
				}
			}
			vc := up.GetCommonTlsContext().GetValidationContext()
			hasCert := len(up.GetCommonTlsContext().GetTlsCertificates()) == 1
			if vc.GetTrustedCa().GetFilename() == "" || len(vc.GetMatchTypedSubjectAltNames()) == 0 || hasBearer != tc.bearer || hasCert == tc.bearer {
				t.Fatalf("bearer %v, client certificate %v, TLS %v", hasBearer, hasCert, &up)
			}
		})
	}
}

// TestBootstrapsCatchMistakes: the decoding is strict enough to fail.
func TestBootstrapsCatchMistakes(t *testing.T) {
	for name, doc := range map[string]string{ // JSON is YAML too
		"unknown field":       `{"static_resources":{"clusterz":[]}}`,
		"unknown type":        `{"static_resources":{"listeners":[{"name":"l","filter_chains":[{"filters":[{"name":"x","typed_config":{"@type":"type.googleapis.com/not.a.Type"}}]}]}]}}`,
		"invalid field value": `{"static_resources":{"clusters":[{"name":""}]}}`,
		"not YAML":            "static_resources: [\n",
		// Which one Envoy would take is not what was checked.
		"a key twice": "static_resources:\n  listeners:\n    - name: l\n      filter_chains:\n        - filters:\n            - name: x\n              typed_config:\n                \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz\n                failure_mode_allow: false\n                failure_mode_allow: true\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseBootstrap([]byte(doc)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
