package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// adminTokenFile is where a generated admin token is kept, inside DATA_DIR.
const adminTokenFile = "admin-token"

// adminToken returns the configured token, or the one generated on an
// earlier start, or generates, stores (0600) and returns a new one. created
// tells the caller to print it once.
func adminToken(configured, dataDir string) (token string, created bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	path := filepath.Join(dataDir, adminTokenFile)
	data, err := os.ReadFile(path)
	// A process that lost the O_EXCL race below may read the file before
	// the winner has written it: give the winner a moment.
	for i := 0; err == nil && len(strings.TrimSpace(string(data))) == 0 && i < 20; i++ {
		time.Sleep(25 * time.Millisecond)
		data, err = os.ReadFile(path)
	}
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(data))
		if len(tok) < 16 {
			return "", false, fmt.Errorf("%s holds no usable admin token; delete it to generate a new one", path)
		}
		return tok, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("reading the admin token: %w", err)
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms (Go 1.24+)
	tok := "mgadm_" + base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("creating DATA_DIR: %w", err)
	}
	// O_EXCL: two processes starting at once must not both believe they
	// created the token.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return adminToken("", dataDir)
		}
		return "", false, fmt.Errorf("storing the admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		_ = f.Close()
		return "", false, fmt.Errorf("storing the admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("storing the admin token: %w", err)
	}
	return tok, true, nil
}
