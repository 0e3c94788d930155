package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// filterWasm is the real filter when `make test` names it
// (MESHGUARD_FILTER_WASM), else the smallest valid module: the image does
// not look inside.
func filterWasm(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MESHGUARD_FILTER_WASM"); p != "" {
		return p
	}
	p := filepath.Join(t.TempDir(), "filter.wasm")
	if err := os.WriteFile(p, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFilterImage: the image Istio's WasmPlugin pulls (oci://…). Istio's
// fetcher takes the image's last layer, a gzipped tar, and reads the file
// named plugin.wasm from it (the "compat" variant); one layer holding that
// one file is the shape every Istio since 1.12 reads.
func TestFilterImage(t *testing.T) {
	wasmPath := filterWasm(t)
	module, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "meshguard-filter-image.tar")
	args := append([]string{"-wasm", wasmPath, "-filter-out", out}, stampArgs()...)
	if err := run(context.Background(), args, &bytes.Buffer{}); err != nil {
		t.Fatalf("image %v: %v", args, err)
	}
	a := readArchive(t, out)
	if len(a.layers) != 1 || len(a.layers[0]) != 1 {
		t.Fatalf("layers %v, want one layer of one file", a.layers)
	}
	e := a.layers[0][0]
	if e.name != "/plugin.wasm" || e.typeflag != '0' {
		t.Fatalf("the layer holds %v, want /plugin.wasm", e)
	}
	if !bytes.Equal(e.content, module) {
		t.Fatalf("plugin.wasm is %d bytes, not the %d of %s", len(e.content), len(module), wasmPath)
	}
	if a.config.OS != "wasip1" || a.config.Architecture != "wasm" {
		t.Errorf("platform %s/%s, want wasip1/wasm", a.config.OS, a.config.Architecture)
	}
	if want := []string{"meshguard-filter:" + testVersion}; !sameSet(a.repoTags, want) {
		t.Errorf("tags %v, want %v", a.repoTags, want)
	}
	fixed := map[string]string{
		"org.opencontainers.image.title":    "meshguard-filter",
		"org.opencontainers.image.source":   want.labels["org.opencontainers.image.source"],
		"org.opencontainers.image.licenses": want.labels["org.opencontainers.image.licenses"],
	}
	checkLabels(t, a.config.Config.Labels, fixed)
}

// TestRefusesBadInput: each bad input is named and nothing is written, not
// even a partial archive.
func TestRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	notWasm := filepath.Join(dir, "not.wasm")
	if err := os.WriteFile(notWasm, []byte("(module)"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherArch := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	bin := needBinary(t)
	stamp := stampArgs()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr error  // or
		wantMsg string // a part of the message
	}{
		{"a wasm module as the binary", append([]string{"-binary", filterWasm(t)}, stamp...), errNotStatic, ""},
		{"a binary of another architecture", append([]string{"-binary", bin, "-arch", otherArch}, stamp...), errWrongArch, ""},
		{"an architecture images are not built for", append([]string{"-binary", bin, "-arch", "riscv64"}, stamp...), errWrongArch, ""},
		{"a text file as the filter", append([]string{"-wasm", notWasm}, stamp...), errNotWasm, ""},
		{"a version that is no tag", []string{"-binary", bin, "-version", "v1 beta", "-revision", "r", "-created", testCreated}, nil, `-version "v1 beta" is not an image tag`},
		{"a creation time that is no time", []string{"-binary", bin, "-version", "v1", "-revision", "r", "-created", "yesterday"}, nil, "-created"},
		{"no stamp", []string{"-binary", bin}, nil, "-version, -revision and -created are required"},
		{"nothing to build", stamp, nil, "nothing to build"},
		{"a missing binary", append([]string{"-binary", filepath.Join(dir, "absent")}, stamp...), os.ErrNotExist, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "image.tar")
			args := append(slices.Clone(tc.args), "-out", out, "-filter-out", out)
			err := run(context.Background(), args, &bytes.Buffer{})
			switch {
			case err == nil:
				t.Fatal("built")
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			case tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg):
				t.Fatalf("error %q, want it to say %q", err, tc.wantMsg)
			}
			left, _ := os.ReadDir(filepath.Dir(out))
			if len(left) != 0 {
				t.Fatalf("left %v behind", left)
			}
		})
	}
}

// TestRefusesDynamicBinary: a cgo binary needs a loader FROM scratch has
// not; it would fail only when the container starts.
func TestRefusesDynamicBinary(t *testing.T) {
	const dynamic = "/bin/sh"
	f, err := elf.Open(dynamic)
	if err != nil {
		t.Skipf("no ELF %s here: %v", dynamic, err)
	}
	interp := false
	for _, p := range f.Progs {
		interp = interp || p.Type == elf.PT_INTERP
	}
	f.Close()
	if !interp {
		t.Skipf("%s is static here", dynamic)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	args := append([]string{"-binary", dynamic, "-arch", runtime.GOARCH, "-out", out}, stampArgs()...)
	if err := run(context.Background(), args, &bytes.Buffer{}); !errors.Is(err, errNotStatic) {
		t.Fatalf("error %v, want %v", err, errNotStatic)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s written: %v", out, err)
	}
}
