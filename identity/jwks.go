package identity

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/meshguard/meshguard/api"
)

// Well-known paths served by the HTTP port (docs/api.md).
const (
	JWKSPath      = api.JWKSPath
	DiscoveryPath = "/.well-known/openid-configuration"
)

// JWKS returns the JWKS document ({"keys":[...]}) of the public keys that
// verify at now, current key first. Only public material is ever written:
// the JWKs are built from public keys alone. HS256 is never published.
func (r *Keyring) JWKS(now time.Time) ([]byte, error) {
	set := jwk.NewSet()
	for _, k := range r.verifying(now) {
		if k.jwk == nil {
			continue // a verify-only keyring (NewPublicKeyring) republishes nothing
		}
		if err := set.AddKey(k.jwk); err != nil {
			return nil, fmt.Errorf("building JWKS: kid %q: %w", k.kid, err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding JWKS: %w", err)
	}
	return b, nil
}

// Discovery is the OIDC discovery document (OpenID Connect Discovery 1.0
// §3), limited to what a token verifier uses. MeshGuard has no
// authorization endpoint: tokens are minted through the admin API, so the
// document exists for its jwks_uri and algorithms (Istio's
// RequestAuthentication and Envoy's jwt_authn read those).
type Discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
}

// NewDiscovery builds the discovery document. issuer must be the iss the
// Issuer writes (OIDC requires the two to be equal; with the default
// "meshguard", strict OIDC clients that expect a URL will not follow it, so
// deployments that want that set the issuer to their public base URL).
// baseURL is the public http(s) address of MeshGuard's HTTP port; jwks_uri
// is baseURL + JWKSPath.
func NewDiscovery(issuer, baseURL string) (Discovery, error) {
	if issuer == "" {
		issuer = DefaultIssuer
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Discovery{}, fmt.Errorf("discovery base URL %q: expected http(s)://host[:port][/path] without query, fragment or credentials", baseURL)
	}
	return Discovery{
		Issuer:                           issuer,
		JWKSURI:                          strings.TrimSuffix(u.String(), "/") + JWKSPath,
		IDTokenSigningAlgValuesSupported: SupportedAlgs(),
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		ClaimsSupported:                  []string{"iss", "sub", "aud", "name", "tier", "tags", "iat", "nbf", "exp", "jti"},
	}, nil
}
