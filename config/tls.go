package config

import (
	"fmt"
	"strconv"
	"strings"
)

// TLS are the TLS_* settings: the files MeshGuard's ports serve TLS from
// (read again at every handshake, so a rotated certificate is used at
// once) and which ports do.
type TLS struct {
	CertFile, KeyFile string
	// ClientCAFile, if set, makes the TLS ports require a client
	// certificate signed by one of its CAs (mTLS).
	ClientCAFile string
	// ClientCertOptional (TLS_CLIENT_AUTH=verify-if-given) lets clients
	// without a certificate in; a certificate given must be of ClientCAFile.
	ClientCertOptional bool
	// GRPC and HTTP say which ports serve TLS (TLS_PORTS).
	GRPC, HTTP bool
	// EnvoyCAFile, EnvoyCertFile and EnvoyKeyFile are where the Envoys
	// MeshGuard's xDS configures find the CA that signs MeshGuard's
	// certificate and their own client certificate (paths on the Envoys).
	EnvoyCAFile, EnvoyCertFile, EnvoyKeyFile string
}

// Enabled says whether any port serves TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" && (t.GRPC || t.HTTP) }

// ProxyAuth are the settings that say who may use the control plane: the
// xDS streams and the wasm filter's endpoints.
type ProxyAuth struct {
	// ProxiesFile lists the proxies (Envoys) allowed, by client
	// certificate identity or bearer credential digest (proxyauth).
	ProxiesFile string
	// InsecureAllowUnauthenticated lets any client open an xDS stream:
	// for development only; serve warns at start.
	InsecureAllowUnauthenticated bool
}

// tlsSettings are the TLS_* and control-plane authentication settings,
// appended to settings.
var tlsSettings = []setting{
	{"tlsCertFile", "TLS_CERT_FILE", "tls-cert-file", "PEM certificate (chain) the TLS ports serve; read again at each handshake", "", str(func(c *Config) *string { return &c.TLS.CertFile })},
	{"tlsKeyFile", "TLS_KEY_FILE", "tls-key-file", "PEM private key of TLS_CERT_FILE", "", str(func(c *Config) *string { return &c.TLS.KeyFile })},
	{"tlsClientCaFile", "TLS_CLIENT_CA_FILE", "tls-client-ca-file", "PEM CAs whose client certificates the TLS ports require (mTLS); empty: no client certificate asked", "", str(func(c *Config) *string { return &c.TLS.ClientCAFile })},
	{"tlsClientAuth", "TLS_CLIENT_AUTH", "tls-client-auth", "with TLS_CLIENT_CA_FILE: require (every client presents a certificate of those CAs) or verify-if-given (clients without one, such as Kubernetes probes, are let in; one presented must be of those CAs)", "require", func(c *Config, v string) error {
		switch strings.TrimSpace(v) {
		case "require":
			c.TLS.ClientCertOptional = false
		case "verify-if-given":
			c.TLS.ClientCertOptional = true
		default:
			return fmt.Errorf("%q: expected require or verify-if-given", v)
		}
		return nil
	}},
	{"tlsPorts", "TLS_PORTS", "tls-ports", "which ports serve TLS when TLS_CERT_FILE is set: grpc, http, or grpc,http", "grpc", func(c *Config, v string) error {
		c.TLS.GRPC, c.TLS.HTTP = false, false
		for _, p := range strings.Split(v, ",") {
			switch strings.TrimSpace(p) {
			case "grpc":
				c.TLS.GRPC = true
			case "http":
				c.TLS.HTTP = true
			default:
				return fmt.Errorf("%q: expected grpc, http, or grpc,http", v)
			}
		}
		return nil
	}},
	{"xdsEnvoyCaFile", "XDS_ENVOY_CA_FILE", "xds-envoy-ca-file", "with TLS: the CA file that signs MeshGuard's certificate, as a path on the Envoys xDS configures", "", str(func(c *Config) *string { return &c.TLS.EnvoyCAFile })},
	{"xdsEnvoyCertFile", "XDS_ENVOY_CERT_FILE", "xds-envoy-cert-file", "with mTLS: the Envoys' client certificate, as a path on the Envoys", "", str(func(c *Config) *string { return &c.TLS.EnvoyCertFile })},
	{"xdsEnvoyKeyFile", "XDS_ENVOY_KEY_FILE", "xds-envoy-key-file", "with mTLS: the Envoys' client key, as a path on the Envoys", "", str(func(c *Config) *string { return &c.TLS.EnvoyKeyFile })},
	{"proxiesFile", "PROXIES_FILE", "proxies-file", "the proxies allowed on xDS and the wasm filter's endpoints, by certificate identity or credential digest (YAML, watched)", "", str(func(c *Config) *string { return &c.ProxyAuth.ProxiesFile })},
	{"xdsInsecureAllowUnauthenticated", "XDS_INSECURE_ALLOW_UNAUTHENTICATED", "xds-insecure-allow-unauthenticated", "DEVELOPMENT ONLY: let any client open an xDS stream and read the configuration", "false", func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q: expected true or false", v)
		}
		c.ProxyAuth.InsecureAllowUnauthenticated = b
		return nil
	}},
}

// checkTLS refuses TLS settings that do not go together.
func (c *Config) checkTLS() error {
	t := c.TLS
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		return fmt.Errorf("%w: TLS_CERT_FILE and TLS_KEY_FILE: set both or neither", ErrInvalid)
	case t.ClientCertOptional && t.ClientCAFile == "":
		return fmt.Errorf("%w: TLS_CLIENT_AUTH: verify-if-given verifies client certificates against TLS_CLIENT_CA_FILE; set it too", ErrInvalid)
	case t.ClientCAFile != "" && t.CertFile == "":
		return fmt.Errorf("%w: TLS_CLIENT_CA_FILE: client certificates are asked for in a TLS handshake; set TLS_CERT_FILE and TLS_KEY_FILE too", ErrInvalid)
	case (t.EnvoyCertFile == "") != (t.EnvoyKeyFile == ""):
		return fmt.Errorf("%w: XDS_ENVOY_CERT_FILE and XDS_ENVOY_KEY_FILE: set both or neither", ErrInvalid)
	case t.Enabled() && (c.ServicesFile != "" || c.WasmFilterPath != "") && t.EnvoyCAFile == "":
		// The clusters xDS gives Envoys back to MeshGuard must speak TLS,
		// and Envoy checks a server certificate only against a CA it is
		// given: without one, ext_authz and the filter would fail closed.
		return fmt.Errorf("%w: XDS_ENVOY_CA_FILE: required with TLS_CERT_FILE when MeshGuard's xDS configures Envoys (SERVICES_FILE or WASM_FILTER_PATH)", ErrInvalid)
	case t.ClientCAFile != "" && (c.ServicesFile != "" || c.WasmFilterPath != "") && t.EnvoyCertFile == "":
		return fmt.Errorf("%w: XDS_ENVOY_CERT_FILE: required with TLS_CLIENT_CA_FILE when MeshGuard's xDS configures Envoys: their clusters back to MeshGuard need a client certificate", ErrInvalid)
	}
	return nil
}
