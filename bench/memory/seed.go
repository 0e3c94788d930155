package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// seedAgents creates n agents in the SQLite store `serve` opens in dir.
func seedAgents(ctx context.Context, dir string, n int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "meshguard.db"))
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	defer db.Close()
	// A few writers at once: SQLite serialises them, but each spends
	// most of its time outside the lock.
	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += writers {
				_, errs[w] = db.CreateAgent(ctx, identity.Agent{
					Name:      fmt.Sprintf("agent-%05d", i),
					TrustTier: trust.Verified,
					Status:    identity.StatusActive,
					Tags:      []string{fmt.Sprintf("team-%02d", i%100), "bench"},
					Hosts:     []string{fmt.Sprintf("agent-%05d.mesh", i)},
					Metadata:  map[string]string{"owner": fmt.Sprintf("team-%02d", i%100)},
				})
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("seeding agents: %w", err)
	}
	return nil
}

// writePolicies writes rules rules, 100 a policy, one policy a team.
func writePolicies(dir string, rules int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	const perPolicy = 100
	for p := 0; p*perPolicy < rules; p++ {
		var b strings.Builder
		fmt.Fprintf(&b, "name: team-%02d\nappliesTo: {tags: [team-%02d]}\nrules:\n", p, p%100)
		for r := p * perPolicy; r < min(rules, (p+1)*perPolicy); r++ {
			switch r % 3 {
			case 0:
				fmt.Fprintf(&b, "  - {name: r%05d, effect: allow, actions: [\"read:team-%02d/doc-%05d/*\"]}\n", r, p, r)
			case 1:
				fmt.Fprintf(&b, "  - {name: r%05d, effect: deny, actions: [\"delete:team-%02d/*\"]}\n", r, p)
			default:
				fmt.Fprintf(&b, "  - name: r%05d\n    effect: allow\n    actions: [\"write:email\"]\n    conditions: {context: {query.to: {matches: \"*@team-%05d.example.com\"}}}\n", r, r)
			}
		}
		b.WriteString("defaultEffect: deny\n")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("team-%03d.yaml", p)), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeServices writes a catalogue of n services whose endpoints carry
// generation gen, replacing the file as editors and ConfigMaps do.
func writeServices(file string, n, gen int) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - name: svc-%02d
    hosts: [svc-%02d.mesh]
    port: 8080
    endpoints: ["10.%d.%d.1:8080", "10.%d.%d.2:8080"]
    agent: agent-%05d
    minTier: verified
    routes:
      - { method: POST, path: /tasks, action: "write:tasks" }
      - { method: GET, path: "/docs/*", action: "read:docs" }
`, i, i, gen, i, gen, i, i)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}
