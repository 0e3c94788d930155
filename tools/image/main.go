// Command image builds MeshGuard's container images without a container
// engine or a registry: FROM scratch with go-containerregistry, written as
// docker-archive tarballs (`make image`; docs/install.md#container-image).
//
// It packs a binary built beforehand (the Makefile builds it with the same
// ldflags as `make build`, CGO_ENABLED=0 and -trimpath) with CA
// certificates, /etc/passwd and the server's directories; and, separately,
// the wasm filter as the image Istio's WasmPlugin pulls.
//
// It lives in its own module so go-containerregistry stays out of the
// server's go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// options are the flags: what to pack, where to write it, and the stamp.
type options struct {
	binary, arch, out       string
	wasm, filterOut         string
	version, revision, date string
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.binary, "binary", "", "the static linux meshguard binary to pack")
	fs.StringVar(&o.arch, "arch", "amd64", "the image's architecture: amd64 or arm64 (the binary's)")
	fs.StringVar(&o.out, "out", "", "the server image archive to write (docker-archive)")
	fs.StringVar(&o.wasm, "wasm", "", "the wasm filter to pack (optional)")
	fs.StringVar(&o.filterOut, "filter-out", "", "the filter image archive to write (with -wasm)")
	fs.StringVar(&o.version, "version", "", "the version: label and tag (what meshguard --version prints)")
	fs.StringVar(&o.revision, "revision", "", "the git commit, for the revision label")
	fs.StringVar(&o.date, "created", "", "the creation time, RFC 3339 (the commit's time makes rebuilds identical)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case o.binary == "" && o.wasm == "":
		return o, errors.New("nothing to build: give -binary, -wasm or both")
	case o.binary != "" && o.out == "":
		return o, errors.New("-binary needs -out")
	case o.wasm != "" && o.filterOut == "":
		return o, errors.New("-wasm needs -filter-out")
	case o.version == "" || o.revision == "" || o.date == "":
		return o, errors.New("-version, -revision and -created are required")
	}
	return o, nil
}

// newStamp checks the stamp before anything is built: the version must be a
// valid tag, the time RFC 3339.
func newStamp(version, revision, date string) (stamp, error) {
	if _, err := name.NewTag(imageName + ":" + version); err != nil {
		return stamp{}, fmt.Errorf("-version %q is not an image tag: %w", version, err)
	}
	created, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return stamp{}, fmt.Errorf("-created: %w", err)
	}
	return stamp{Version: version, Revision: revision, Created: created.UTC()}, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	s, err := newStamp(o.version, o.revision, o.date)
	if err != nil {
		return err
	}
	if o.binary != "" {
		if err := buildServer(ctx, o.binary, o.arch, o.out, s); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s (%s:%s, linux/%s)\n", o.out, imageName, s.Version, o.arch)
	}
	if o.wasm != "" {
		if err := buildFilter(ctx, o.wasm, o.filterOut, s); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s (%s:%s)\n", o.filterOut, filterName, s.Version)
	}
	return nil
}

// buildServer packs the binary at binPath into the server image at out.
func buildServer(ctx context.Context, binPath, arch, out string, s stamp) error {
	binary, err := os.ReadFile(binPath)
	if err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	img, err := serverImage(binary, arch, s)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return writeArchive(out, imageName, img, s)
}

// buildFilter packs the wasm module at wasmPath into the filter image at out.
func buildFilter(ctx context.Context, wasmPath, out string, s stamp) error {
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	img, err := filterImage(wasm, s)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return writeArchive(out, filterName, img, s)
}
