// Package registry holds the service catalogue in force: the services of
// SERVICES_FILE and those put through the admin API, validated together
// before any change is used. It is apart from package catalog so that the
// catalogue's types and matching build for the wasm filter without the
// store.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
)

// Store keeps the services put through the admin API (store.SQLite,
// store.Postgres).
type Store interface {
	PutService(ctx context.Context, name, spec string) error
	ListServices(ctx context.Context) ([]store.StoredService, error)
	DeleteService(ctx context.Context, name string) error
}

// Registry is the catalogue in force: the services of SERVICES_FILE and
// those put through the admin API, validated together. Every change that
// validates is handed to Changed; one that does not changes nothing.
type Registry struct {
	File    string // SERVICES_FILE; empty for none
	Store   Store
	Changed func(ctx context.Context, c *catalog.Catalogue) error

	mu sync.Mutex // serialises changes with the reloads they cause
}

// Load reads the file and the store and hands the catalogue to Changed.
func (r *Registry) Load(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, _, err := r.read(ctx, nil, "")
	if err != nil {
		return err
	}
	return r.Changed(ctx, c)
}

// List returns every service with its source: the file's first, in file
// order, then the stored ones by name.
func (r *Registry) List(ctx context.Context) ([]catalog.Entry, error) {
	_, entries, err := r.read(ctx, nil, "")
	return entries, err
}

// Put stores s (replacing a stored service of its name) if the catalogue
// with it validates, and hands that catalogue to Changed.
func (r *Registry) Put(ctx context.Context, s catalog.Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, entries, err := r.read(ctx, &s, "")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == s.Name && e.Source == catalog.SourceFile {
			return fmt.Errorf("%w: %q (%s); edit the file instead", catalog.ErrFromFile, s.Name, r.File)
		}
	}
	spec, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("service %q: %w", s.Name, err)
	}
	if err := r.Store.PutService(ctx, s.Name, string(spec)); err != nil {
		return err
	}
	return r.Changed(ctx, c)
}

// Delete removes a stored service and hands the catalogue without it to
// Changed.
func (r *Registry) Delete(ctx context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, entries, err := r.read(ctx, nil, name)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == name && e.Source == catalog.SourceFile {
			return fmt.Errorf("%w: %q (%s); edit the file instead", catalog.ErrFromFile, name, r.File)
		}
	}
	if err := r.Store.DeleteService(ctx, name); err != nil {
		return err
	}
	return r.Changed(ctx, c)
}

// read builds the catalogue from the file and the store, with put added
// (replacing a stored service of its name) and without the stored service
// named drop, and validates it.
func (r *Registry) read(ctx context.Context, put *catalog.Service, drop string) (*catalog.Catalogue, []catalog.Entry, error) {
	var entries []catalog.Entry
	if r.File != "" {
		data, err := policy.ReadFile(r.File)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: SERVICES_FILE: %w", catalog.ErrInvalid, err)
		}
		c, err := catalog.Parse(r.File, data)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range c.Services {
			entries = append(entries, catalog.Entry{Service: s, Source: catalog.SourceFile})
		}
	}
	fileCount := len(entries)
	stored, err := r.Store.ListServices(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, st := range stored {
		if st.Name == drop || (put != nil && st.Name == put.Name) {
			continue
		}
		var s catalog.Service
		if err := decodeJSON([]byte(st.Spec), &s); err != nil {
			return nil, nil, fmt.Errorf("stored service %q: %w", st.Name, err)
		}
		entries = append(entries, catalog.Entry{Service: s, Source: catalog.SourceStored})
	}
	if put != nil {
		entries = append(entries, catalog.Entry{Service: *put, Source: catalog.SourceStored})
	}
	slices.SortStableFunc(entries[fileCount:], func(a, b catalog.Entry) int { return strings.Compare(a.Name, b.Name) })
	services := make([]catalog.Service, len(entries))
	for i, e := range entries {
		services[i] = e.Service
	}
	// The file validated alone above: what fails now is a stored or put
	// service, alone or against the others. Name it as its caller knows it.
	c, err := catalog.NewFrom(services, func(i int) (string, int) {
		switch {
		case i < fileCount:
			return r.File, i
		case put != nil && entries[i].Name == put.Name:
			// The stored one of its name was left out above.
			return "service " + put.Name, -1
		}
		return "stored service " + entries[i].Name, -1
	})
	if err != nil {
		return nil, nil, err
	}
	for i := range entries {
		entries[i].Service = c.Services[i]
	}
	return c, entries, nil
}

func decodeJSON(data []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("one JSON object expected")
	}
	return nil
}
