package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Errors a caller (and the tests) can tell apart.
var (
	errNotStatic = errors.New("not a static Linux executable (build it with CGO_ENABLED=0 GOOS=linux)")
	errWrongArch = errors.New("binary built for another architecture")
	errNotWasm   = errors.New("not a WebAssembly module")
	errNoRoots   = errors.New("no root certificate")
)

// goarchMachine is the ELF machine of each architecture an image is built for.
var goarchMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// checkBinary refuses what would not run FROM scratch: a binary that is not
// an ELF executable of arch, or one that needs a dynamic loader (cgo).
func checkBinary(binary []byte, arch string) error {
	want, ok := goarchMachine[arch]
	if !ok {
		return fmt.Errorf("architecture %q: %w (amd64 or arm64)", arch, errWrongArch)
	}
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		return fmt.Errorf("binary: %w: %w", errNotStatic, err)
	}
	defer f.Close()
	if (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) || (f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX) {
		return fmt.Errorf("binary: %w", errNotStatic)
	}
	if f.Machine != want {
		return fmt.Errorf("binary is %s, image is %s: %w", f.Machine, arch, errWrongArch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary asks for a dynamic loader: %w", errNotStatic)
		}
	}
	return nil
}

// wasmMagic opens every WebAssembly binary module (version 1).
var wasmMagic = []byte("\x00asm\x01\x00\x00\x00")

// serverImage is the server's image: one layer, the user, entrypoint,
// ports, variables and labels of spec.go.
func serverImage(binary []byte, arch string, s stamp) (v1.Image, error) {
	if err := checkBinary(binary, arch); err != nil {
		return nil, err
	}
	files, err := serverFiles(binary)
	if err != nil {
		return nil, err
	}
	ports := map[string]struct{}{}
	for _, p := range exposedPorts() {
		ports[p] = struct{}{}
	}
	return image(files, s, v1.ConfigFile{
		OS:           "linux",
		Architecture: arch,
		Config: v1.Config{
			User:         user,
			Entrypoint:   entrypoint(),
			Cmd:          cmd(),
			Env:          env(),
			ExposedPorts: ports,
			Labels:       labels(s, imageName, description),
		},
	})
}

// filterImage is the wasm filter as Istio's WasmPlugin pulls it: the
// "compat" variant of the Wasm image specification, one layer holding
// plugin.wasm. Pushed from this archive it is a Docker-typed image, which
// Istio reads the same way as its OCI-typed twin.
func filterImage(wasm []byte, s stamp) (v1.Image, error) {
	if !bytes.HasPrefix(wasm, wasmMagic) {
		return nil, fmt.Errorf("filter: %w", errNotWasm)
	}
	return image([]file{{path: pluginFile, mode: 0o444, content: wasm}}, s, v1.ConfigFile{
		OS:           "wasip1",
		Architecture: "wasm",
		Config:       v1.Config{Labels: labels(s, filterName, filterDesc)},
	})
}

// image builds a one-layer image with cfg from an empty base: nothing is
// pulled.
func image(files []file, s stamp, cfg v1.ConfigFile) (v1.Image, error) {
	raw, err := layerTar(files, s.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: s.Created}, CreatedBy: "meshguard tools/image", Comment: "FROM scratch"},
	})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	base, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg.RootFS = base.RootFS
	cfg.History = base.History
	cfg.Created = v1.Time{Time: s.Created}
	img, err = mutate.ConfigFile(img, &cfg)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// writeArchive writes img as a docker-archive (what `docker load`,
// `crane push` and skopeo's docker-archive: read), tagged repo:version. One
// tag only: go-containerregistry orders several by map iteration, which
// would make two builds of one commit differ. It writes a temporary file and
// renames it: a failed build leaves no half archive, and an old one stays
// whole until replaced.
func writeArchive(out, repo string, img v1.Image, s stamp) error {
	tag, err := name.NewTag(repo + ":" + s.Version)
	if err != nil {
		return fmt.Errorf("version %q is not an image tag: %w", s.Version, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tarball.Write(tag, img, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("archive %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("archive %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("archive %s: %w", out, err)
	}
	return nil
}
