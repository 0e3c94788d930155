package envoy

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/envoy/envoytest"
)

// FuzzParseBootstrap: whatever ParseBootstrap accepts is valid; a JSON
// document means the same read as YAML as protojson reads it (so no YAML
// quirk — a merge key, a duplicate key — changes what was checked);
// written back out it parses again to the same bootstrap; and the
// fail-closed check gives it the same verdict both times. The seeds are
// the bootstraps MeshGuard ships and the mistakes ParseBootstrap refuses.
func FuzzParseBootstrap(f *testing.F) {
	for _, name := range []string{"envoy-static.yaml", "envoy-xds.yaml", "envoy-xds-mtls.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(kubernetesSidecar(f))
	for _, doc := range []string{
		`{"static_resources":{"clusterz":[]}}`,
		`{"static_resources":{"clusters":[{"name":""}]}}`,
		`{"static_resources":{"clusters":[{"name":"a","name":"b"}]}}`,
		`{"node":{"id":"a","<<":{"cluster":"c"}}}`,
		"node:\n  id: a\n  <<: {cluster: c}\n",
		`{"overload_manager":{"refresh_interval":"1s","resource_monitors":[{"name":"m","typed_config":{"@type":"type.googleapis.com/google.protobuf.Struct","value":{"x":-0}}}]}}`,
		"static_resources: [\n",
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBootstrap(data)
		if err != nil {
			return
		}
		if err := b.ValidateAll(); err != nil {
			t.Fatalf("accepted an invalid bootstrap: %v", err)
		}
		once := reparse(t, b)
		if json.Valid(data) {
			var direct bootstrapv3.Bootstrap
			if err := protojson.Unmarshal(data, &direct); err != nil {
				t.Fatalf("accepted as YAML a JSON document protojson refuses: %v", err)
			}
			if !bytes.Equal(marshal(t, once), marshal(t, reparse(t, &direct))) {
				t.Fatalf("read as YAML:\n%v\nread as JSON:\n%v", b, &direct)
			}
		}
		// -0 and 0 are one number to YAML (a plain -0 is the integer 0),
		// so the first pass may drop a field; after it nothing changes.
		if twice := reparse(t, once); !bytes.Equal(marshal(t, once), marshal(t, twice)) {
			t.Fatalf("written out and parsed again, it changed:\n%v\n%v", once, twice)
		}
		if v1, v2 := envoytest.CheckBootstrap(b), envoytest.CheckBootstrap(once); !slices.Equal(v1, v2) {
			t.Fatalf("the fail-closed check changed its verdict on the same bootstrap: %v, then %v", v1, v2)
		}
	})
}

// reparse writes b out as JSON and parses it again.
func reparse(t *testing.T, b *bootstrapv3.Bootstrap) *bootstrapv3.Bootstrap {
	t.Helper()
	js, err := protojson.Marshal(b)
	if err != nil {
		t.Fatalf("a parsed bootstrap does not encode: %v", err)
	}
	again, err := ParseBootstrap(js)
	if err != nil {
		t.Fatalf("a parsed bootstrap, written out, does not parse: %v\n%s", err, js)
	}
	return again
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kubernetesSidecar is the Envoy configuration in the Kubernetes
// example's ConfigMap.
func kubernetesSidecar(f *testing.F) []byte {
	data, err := os.ReadFile("../examples/kubernetes/agent-with-envoy.yaml")
	if err != nil {
		f.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&cm); err != nil || cm.Data["envoy.yaml"] == "" {
		f.Fatalf("the example's ConfigMap: %v", err)
	}
	return []byte(cm.Data["envoy.yaml"])
}
