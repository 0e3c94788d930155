package main

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"fmt"
	"path"
	"strconv"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// file is one entry of a layer. Directories have no content.
type file struct {
	path    string
	mode    int64 // permission bits (and sticky/setuid, never set here)
	dir     bool
	owner   int // uid and gid
	content []byte
}

// serverFiles is the server image's whole filesystem but the binary's
// parents: no shell, no package manager, nothing but what meshguard reads.
func serverFiles(binary []byte) ([]file, error) {
	certs, err := caBundle()
	if err != nil {
		return nil, err
	}
	id := strconv.Itoa(uid)
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		userName + ":x:" + id + ":" + id + ":" + userName + ":" + homeDir + ":/sbin/nologin\n"
	group := "root:x:0:\n" + userName + ":x:" + id + ":\n"
	return []file{
		{path: "etc", mode: 0o755, dir: true},
		{path: "etc/passwd", mode: 0o644, content: []byte(passwd)},
		{path: "etc/group", mode: 0o644, content: []byte(group)},
		// Go's resolver reads it to decide between /etc/hosts and DNS.
		{path: "etc/nsswitch.conf", mode: 0o644, content: []byte("hosts: files dns\n")},
		{path: "etc/ssl", mode: 0o755, dir: true},
		{path: "etc/ssl/certs", mode: 0o755, dir: true},
		{path: caBundlePath[1:], mode: 0o644, content: certs},
		{path: "etc/meshguard", mode: 0o755, dir: true},
		{path: policiesDir[1:], mode: 0o755, dir: true},
		{path: "home", mode: 0o755, dir: true},
		{path: homeDir[1:], mode: 0o700, dir: true, owner: uid},
		{path: "usr", mode: 0o755, dir: true},
		{path: "usr/local", mode: 0o755, dir: true},
		{path: "usr/local/bin", mode: 0o755, dir: true},
		{path: binaryPath[1:], mode: 0o755, content: binary},
		{path: "var", mode: 0o755, dir: true},
		{path: "var/lib", mode: 0o755, dir: true},
		// The server creates DATA_DIR 0700; owned by the user, so the image
		// also runs without a volume when the root filesystem is writable.
		{path: dataDir[1:], mode: 0o700, dir: true, owner: uid},
	}, nil
}

// caBundle is the Mozilla (NSS) root store that x509roots/fallback embeds,
// as PEM, so the image needs no package from the build host. A root NSS
// trusts only for certificates issued before a date cannot say so in PEM:
// it is left out rather than trusted without its limit.
func caBundle() ([]byte, error) {
	var b bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA bundle: %w", errNoRoots)
	}
	return b.Bytes(), nil
}

// layerTar writes files as one uncompressed layer, every time stamped
// mtime so that the same inputs give the same bytes.
func layerTar(files []file, mtime time.Time) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		h := &tar.Header{
			Name:    path.Clean(f.path),
			Mode:    f.mode,
			Uid:     f.owner,
			Gid:     f.owner,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.content))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", f.path, err)
		}
		if _, err := tw.Write(f.content); err != nil {
			return nil, fmt.Errorf("layer %s: %w", f.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return b.Bytes(), nil
}
