package envoy

import (
	"encoding/json"
	"os"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"
)

// TestBootstraps: each file decodes strictly into the Bootstrap proto —
// unknown fields refused, every typed config resolved to its message —
// and passes ValidateAll.
func TestBootstraps(t *testing.T) {
	for _, name := range []string{"envoy-static.yaml", "envoy-xds.yaml"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := yaml.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			js, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var b bootstrapv3.Bootstrap
			if err := (protojson.UnmarshalOptions{}).Unmarshal(js, &b); err != nil {
				t.Fatalf("not an Envoy bootstrap: %v", err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("invalid: %v", err)
			}
		})
	}
}

// TestBootstrapsCatchMistakes: the decoding is strict enough to fail.
func TestBootstrapsCatchMistakes(t *testing.T) {
	for name, js := range map[string]string{
		"unknown field":       `{"static_resources":{"clusterz":[]}}`,
		"unknown type":        `{"static_resources":{"listeners":[{"name":"l","filter_chains":[{"filters":[{"name":"x","typed_config":{"@type":"type.googleapis.com/not.a.Type"}}]}]}]}}`,
		"invalid field value": `{"static_resources":{"clusters":[{"name":""}]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			var b bootstrapv3.Bootstrap
			if err := protojson.Unmarshal([]byte(js), &b); err == nil {
				if err := b.ValidateAll(); err == nil {
					t.Fatal("accepted")
				}
			}
		})
	}
}
