package charttest

import (
	"os"
	"slices"
	"strings"
	"testing"

	extensionsv1alpha1 "istio.io/api/extensions/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// docLines returns the words of each line of doc that starts with prefix.
func docLines(doc, prefix string) [][]string {
	var out [][]string
	for line := range strings.Lines(doc) {
		if strings.HasPrefix(line, prefix) {
			out = append(out, strings.Fields(line))
		}
	}
	return out
}

// pushed returns the references docs/install.md pushes tarball to with crane.
func pushed(doc, tarball string) []string {
	var refs []string
	for _, f := range docLines(doc, "crane push "+tarball+" ") {
		refs = append(refs, f[3])
	}
	return refs
}

// TestInstallDocImage: each way docs/install.md installs the chart runs the
// server image the doc pushed, and the WasmPlugin pulls the filter image it
// pushed; a newcomer who copies the commands gets no ImagePullBackOff.
func TestInstallDocImage(t *testing.T) {
	data, err := os.ReadFile(repoFile("docs/install.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	servers := pushed(doc, "bin/meshguard-image.tar")
	filters := pushed(doc, "bin/meshguard-filter-image.tar")
	if len(servers) == 0 || len(filters) == 0 {
		t.Fatalf("docs/install.md pushes the server to %q and the filter to %q: want a crane push of each", servers, filters)
	}

	// The Kubernetes section's helm install, its --set assignments applied.
	plain := docLines(doc, "helm install "+releaseName+" charts/meshguard --namespace "+namespace+" --create-namespace")
	if len(plain) != 1 {
		t.Fatalf("docs/install.md has %d `helm install … --create-namespace` lines, want 1", len(plain))
	}
	readme, err := os.ReadFile(chartDir + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if got := docLines(string(readme), "helm install "); len(got) != 1 || !slices.Equal(got[0], plain[0]) {
		t.Errorf("charts/meshguard/README.md installs with %q, docs/install.md with %q: want the same command", got, plain[0])
	}
	var sets []string
	for i, w := range plain[0] {
		if w == "--set" && i+1 < len(plain[0]) {
			sets = append(sets, plain[0][i+1])
		}
	}
	block, err := docBlock(doc, "istio-values")
	if err != nil {
		t.Fatal(err)
	}
	istio := map[string]any{}
	if err := yaml.Unmarshal([]byte(block), &istio); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		vals map[string]any
		wasm bool
	}{
		{"kubernetes", with(t, map[string]any{}, sets...), false},
		{"istio", istio, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.vals)
			d := must[*appsv1.Deployment](t, r, "Deployment", releaseName)
			if img := d.Spec.Template.Spec.Containers[0].Image; !slices.Contains(servers, img) {
				t.Errorf("the Deployment runs %s; docs/install.md pushes the server to %q", img, servers)
			}
			if !tt.wasm {
				return
			}
			wp := must[*istioResource](t, r, "WasmPlugin", releaseName)
			url := wp.spec.(*extensionsv1alpha1.WasmPlugin).GetUrl()
			if ref, ok := strings.CutPrefix(url, "oci://"); !ok || !slices.Contains(filters, ref) {
				t.Errorf("the WasmPlugin pulls %s; docs/install.md pushes the filter to %q", url, filters)
			}
		})
	}

	// The proxies file the doc's filter token writes is the one its ConfigMap takes.
	token := docLines(doc, "meshguard filter token ")
	if len(token) != 1 || !slices.Contains(token[0], "--add-to") {
		t.Fatalf("docs/install.md: %q: want one `meshguard filter token --add-to FILE …` line (the ConfigMap needs the file)", token)
	}
	file := token[0][slices.Index(token[0], "--add-to")+1]
	cm := docLines(doc, "kubectl -n "+namespace+" create configmap meshguard-proxies ")
	if len(cm) != 1 || !slices.Contains(cm[0], "--from-file="+file) {
		t.Errorf("docs/install.md: the proxies ConfigMap is made by %q, not from %s, the file `meshguard filter token` writes", cm, file)
	}
}
