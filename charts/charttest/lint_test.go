package charttest

import (
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
)

// TestLint: `helm lint` of the chart, with the default and the full values,
// reports nothing above information.
func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
	}{{"default values", nil}, {"full values", loadValues(t, fullValues)}} {
		t.Run(tc.name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Namespace = namespace
			res := lint.Run([]string{chartDir}, tc.vals)
			if res.TotalChartsLinted != 1 {
				t.Fatalf("%d charts linted: %v", res.TotalChartsLinted, res.Errors)
			}
			for _, m := range res.Messages {
				if m.Severity > support.InfoSev {
					t.Error(m)
				}
			}
			for _, err := range res.Errors {
				t.Error(err)
			}
		})
	}
}

// TestDecodingIsStrict: the decoder refuses a misspelt field in each family
// of objects the chart renders, and accepts the same document spelt right.
func TestDecodingIsStrict(t *testing.T) {
	for _, tc := range []struct {
		name, doc, old, new string
	}{
		{"Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 2}\n", "replicas", "replica"},
		{"Certificate", "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: c}\nspec: {secretName: s, issuerRef: {name: i}}\n", "secretName", "secretNme"},
		{"ServiceMonitor", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\nspec: {selector: {}, endpoints: [{port: http}]}\n", "port: http", "prot: http"},
		{"AuthorizationPolicy spec", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {action: CUSTOM, provider: {name: x}}\n", "provider", "provder"},
		{"AuthorizationPolicy metadata", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {action: CUSTOM}\n", "metadata", "metdata"},
		{"WasmPlugin", "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: w}\nspec: {url: oci://r/f, failStrategy: FAIL_CLOSE}\n", "failStrategy", "failStratgy"},
		{"a kind the chart does not render", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", "kind: Pod", "kind: Pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(tc.doc, tc.old, tc.new, 1)
			if tc.old != tc.new {
				if _, err := decode([]byte(tc.doc)); err != nil {
					t.Fatalf("the document spelt right is refused: %v", err)
				}
				if bad == tc.doc {
					t.Fatalf("%q is not in the document", tc.old)
				}
			}
			if _, err := decode([]byte(bad)); err == nil {
				t.Fatalf("accepted:\n%s", bad)
			}
		})
	}
}
