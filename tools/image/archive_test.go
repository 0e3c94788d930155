package main

// An independent reader of docker-archive tarballs: archive/tar,
// compress/gzip and encoding/json only, never go-containerregistry, so the
// tests cannot share a misunderstanding with the builder.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"testing"
)

// archive is what `docker load` would read from one tarball.
type archive struct {
	repoTags []string
	config   imageConfig
	layers   [][]entry // each layer's entries, in order
}

// imageConfig is the part of the OCI / Docker image config the tests check.
type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Created      string `json:"created"`
	Config       struct {
		User         string              `json:"User"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		Env          []string            `json:"Env"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Labels       map[string]string   `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// entry is one file of a layer.
type entry struct {
	name     string
	typeflag byte
	mode     int64
	uid, gid int
	content  []byte
}

// readArchive opens a docker-archive: manifest.json names one image, its
// config and its gzipped layers; each layer's uncompressed digest must be
// the config's diff_id, as `docker load` checks.
func readArchive(t *testing.T, file string) archive {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	members := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", file, h.Name, err)
		}
		members[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(members["manifest.json"], &manifest); err != nil {
		t.Fatalf("%s: manifest.json: %v", file, err)
	}
	if len(manifest) != 1 {
		t.Fatalf("%s: %d images, want 1", file, len(manifest))
	}
	m := manifest[0]
	var a archive
	a.repoTags = m.RepoTags
	dec := json.NewDecoder(bytes.NewReader(members[m.Config]))
	if err := dec.Decode(&a.config); err != nil {
		t.Fatalf("%s: config %s: %v", file, m.Config, err)
	}
	if a.config.RootFS.Type != "layers" || len(a.config.RootFS.DiffIDs) != len(m.Layers) {
		t.Fatalf("%s: rootfs %+v for %d layers", file, a.config.RootFS, len(m.Layers))
	}
	for i, name := range m.Layers {
		gz, ok := members[name]
		if !ok {
			t.Fatalf("%s: layer %s missing", file, name)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s: layer %s: %v", file, name, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: layer %s: %v", file, name, err)
		}
		sum := sha256.Sum256(plain)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != a.config.RootFS.DiffIDs[i] {
			t.Fatalf("%s: layer %s is %s, the config says %s", file, name, got, a.config.RootFS.DiffIDs[i])
		}
		a.layers = append(a.layers, readLayer(t, plain))
	}
	return a
}

func readLayer(t *testing.T, plain []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(plain))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("layer %s: %v", h.Name, err)
		}
		out = append(out, entry{name: path.Clean("/" + h.Name), typeflag: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, content: b})
	}
}

// files is the image's filesystem by absolute path (the last layer wins).
func (a archive) files() map[string]entry {
	fs := map[string]entry{}
	for _, l := range a.layers {
		for _, e := range l {
			fs[e.name] = e
		}
	}
	return fs
}

func (e entry) String() string {
	return fmt.Sprintf("%s type %c mode %o owner %d:%d", e.name, e.typeflag, e.mode, e.uid, e.gid)
}
