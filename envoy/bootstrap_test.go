package envoy

import (
	"os"
	"testing"
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
			if _, err := ParseBootstrap(data); err != nil {
				t.Fatal(err)
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
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseBootstrap([]byte(doc)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
