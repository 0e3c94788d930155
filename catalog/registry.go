package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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

// Source says where a service of the catalogue comes from.
type Source string

// Sources.
const (
	SourceFile   Source = "file"   // SERVICES_FILE
	SourceStored Source = "stored" // PUT /admin/services/{name}
)

// Entry is a service and where it comes from.
type Entry struct {
	Service
	Source Source `json:"source"`
}

// ErrFromFile is returned for a change to a service SERVICES_FILE defines:
// the file is its source of truth.
var ErrFromFile = errors.New("the service is defined in SERVICES_FILE")

// Registry is the catalogue in force: the services of SERVICES_FILE and
// those put through the admin API, validated together. Every change that
// validates is handed to Changed; one that does not changes nothing.
type Registry struct {
	File    string // SERVICES_FILE; empty for none
	Store   Store
	Changed func(ctx context.Context, c *Catalogue) error

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
func (r *Registry) List(ctx context.Context) ([]Entry, error) {
	_, entries, err := r.read(ctx, nil, "")
	return entries, err
}

// Put stores s (replacing a stored service of its name) if the catalogue
// with it validates, and hands that catalogue to Changed.
func (r *Registry) Put(ctx context.Context, s Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, entries, err := r.read(ctx, &s, "")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == s.Name && e.Source == SourceFile {
			return fmt.Errorf("%w: %q (%s); edit the file instead", ErrFromFile, s.Name, r.File)
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
		if e.Name == name && e.Source == SourceFile {
			return fmt.Errorf("%w: %q (%s); edit the file instead", ErrFromFile, name, r.File)
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
func (r *Registry) read(ctx context.Context, put *Service, drop string) (*Catalogue, []Entry, error) {
	var entries []Entry
	if r.File != "" {
		data, err := policy.ReadFile(r.File)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: SERVICES_FILE: %w", ErrInvalid, err)
		}
		c, err := Parse(r.File, data)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range c.Services {
			entries = append(entries, Entry{Service: s, Source: SourceFile})
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
		var s Service
		if err := decodeJSON([]byte(st.Spec), &s); err != nil {
			return nil, nil, fmt.Errorf("stored service %q: %w", st.Name, err)
		}
		entries = append(entries, Entry{Service: s, Source: SourceStored})
	}
	if put != nil {
		entries = append(entries, Entry{Service: *put, Source: SourceStored})
	}
	slices.SortStableFunc(entries[fileCount:], func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	services := make([]Service, len(entries))
	for i, e := range entries {
		services[i] = e.Service
	}
	c, err := New(services)
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
