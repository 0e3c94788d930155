package config

import (
	"errors"
	"strings"
	"testing"
)

// TestTLSSettings: the TLS files go together, TLS_PORTS is one of three
// values, and the unauthenticated-xDS opt-out is off unless set.
func TestTLSSettings(t *testing.T) {
	c, err := Load("", env(map[string]string{"TLS_CERT_FILE": "/tls/tls.crt", "TLS_KEY_FILE": "/tls/tls.key", "TLS_CLIENT_CA_FILE": "/tls/ca.crt", "TLS_PORTS": "grpc,http", "PROXIES_FILE": "/etc/mg/proxies.yaml"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TLS{CertFile: "/tls/tls.crt", KeyFile: "/tls/tls.key", ClientCAFile: "/tls/ca.crt", GRPC: true, HTTP: true}); c.TLS != want || c.ProxyAuth.ProxiesFile != "/etc/mg/proxies.yaml" || c.ProxyAuth.InsecureAllowUnauthenticated {
		t.Fatalf("got %+v %+v", c.TLS, c.ProxyAuth)
	}
	if c, err := Load("", env(map[string]string{"TLS_CERT_FILE": "/a", "TLS_KEY_FILE": "/b", "TLS_CLIENT_CA_FILE": "/c", "TLS_CLIENT_AUTH": "verify-if-given"}), nil); err != nil || !c.TLS.ClientCertOptional {
		t.Fatalf("verify-if-given: %+v %v", c, err)
	}
	if d, _ := Load("", nil, nil); d.TLS.Enabled() || !d.TLS.GRPC || d.TLS.HTTP || d.ProxyAuth.InsecureAllowUnauthenticated || d.TLS.ClientCertOptional {
		t.Fatalf("defaults: %+v %+v", d.TLS, d.ProxyAuth)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a certificate without its key", map[string]string{"TLS_CERT_FILE": "/tls/tls.crt"}, "TLS_CERT_FILE and TLS_KEY_FILE"},
		{"a client CA without TLS", map[string]string{"TLS_CLIENT_CA_FILE": "/tls/ca.crt"}, "TLS_CLIENT_CA_FILE"},
		{"an unknown port", map[string]string{"TLS_PORTS": "grpc,admin"}, "TLS_PORTS"},
		{"xDS over TLS without the Envoys' CA", map[string]string{"TLS_CERT_FILE": "/a", "TLS_KEY_FILE": "/b", "SERVICES_FILE": "/s.yaml"}, "XDS_ENVOY_CA_FILE"},
		{"xDS over mTLS without the Envoys' certificate", map[string]string{"TLS_CERT_FILE": "/a", "TLS_KEY_FILE": "/b", "TLS_CLIENT_CA_FILE": "/c", "XDS_ENVOY_CA_FILE": "/d", "WASM_FILTER_PATH": "/f.wasm"}, "XDS_ENVOY_CERT_FILE"},
		{"an Envoy key without its certificate", map[string]string{"XDS_ENVOY_KEY_FILE": "/k"}, "XDS_ENVOY_CERT_FILE and XDS_ENVOY_KEY_FILE"},
		{"a vague opt-out", map[string]string{"XDS_INSECURE_ALLOW_UNAUTHENTICATED": "yes please"}, "XDS_INSECURE_ALLOW_UNAUTHENTICATED"},
		{"an unknown client auth", map[string]string{"TLS_CERT_FILE": "/a", "TLS_KEY_FILE": "/b", "TLS_CLIENT_CA_FILE": "/c", "TLS_CLIENT_AUTH": "optional"}, "TLS_CLIENT_AUTH"},
		{"optional client certificates of no CA", map[string]string{"TLS_CERT_FILE": "/a", "TLS_KEY_FILE": "/b", "TLS_CLIENT_AUTH": "verify-if-given"}, "TLS_CLIENT_AUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load("", env(tc.env), nil); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v; want ErrInvalid naming %s", err, tc.want)
			}
		})
	}
}
