package catalog

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse: whatever the input, Parse returns a catalogue or an
// ErrInvalid, never both and never a panic. A catalogue it returns is what
// the file means, whichever way it is carried:
//   - it validates again (New) to itself, its hosts lower-cased;
//   - written back as a SERVICES_FILE, it parses to itself;
//   - in the admin API's JSON (PUT /admin/services/{name}), it decodes and
//     validates to itself.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../examples/services.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("services:\n  - {name: a, hosts: [a.mesh], port: 80, endpoints: [\"[::1]:80\"]}\n"))
	f.Add([]byte("services: [{name: a, hosts: [&x a], port: *x}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.Is(err, ErrInvalid) || c != nil || !errors.As(err, &list) || len(list) == 0 || len(list) > MaxErrors+1 {
				t.Fatalf("a refusal is not a bounded ErrorList, or came with a catalogue: %v, %v", c, err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Line < 0 || e.Msg == "" || !strings.HasPrefix(e.Error(), "fuzz.yaml:") {
					t.Fatalf("an error does not name the file: %#v", e)
				}
			}
			return
		}
		for _, s := range c.Services {
			for _, h := range s.Hosts {
				if h != strings.ToLower(h) {
					t.Fatalf("service %q: host %q is not lower-cased", s.Name, h)
				}
			}
		}
		again, err := New(c.Services)
		if err != nil {
			t.Fatalf("a parsed catalogue does not validate again: %v", err)
		}
		sameCatalogue(t, "validated again", c, again)

		// Back to a SERVICES_FILE, in the parser's own schema.
		var fl file
		for _, s := range c.Services {
			fl.Services = append(fl.Services, service{Name: s.Name, Hosts: s.Hosts, Port: s.Port, Endpoints: s.Endpoints,
				Agent: s.Agent, MinTier: s.MinTier.String(), Routes: s.Routes})
		}
		out, err := yaml.Marshal(fl)
		if err != nil {
			t.Fatalf("a parsed catalogue does not encode as YAML: %v", err)
		}
		back, err := Parse("again.yaml", out)
		if err != nil {
			t.Fatalf("a parsed catalogue, written back, is refused: %v\n%s", err, out)
		}
		sameCatalogue(t, "written back as YAML", c, back)

		// Through the admin API's JSON.
		body, err := json.Marshal(c.Services)
		if err != nil {
			t.Fatalf("a parsed catalogue does not encode as JSON: %v", err)
		}
		var decoded []Service
		if err := json.Unmarshal(body, &decoded); err != nil {
			t.Fatalf("a parsed catalogue's JSON does not decode: %v\n%s", err, body)
		}
		viaJSON, err := New(decoded)
		if err != nil {
			t.Fatalf("a parsed catalogue, through JSON, is refused: %v\n%s", err, body)
		}
		sameCatalogue(t, "through JSON", c, viaJSON)
	})
}

// sameCatalogue fails unless got is want, an empty list and none being the
// same.
func sameCatalogue(t *testing.T, how string, want, got *Catalogue) {
	t.Helper()
	if !reflect.DeepEqual(normal(want), normal(got)) {
		t.Fatalf("%s, the catalogue changed:\n got %+v\nwant %+v", how, got.Services, want.Services)
	}
}

func normal(c *Catalogue) []Service {
	out := make([]Service, len(c.Services))
	for i, s := range c.Services {
		s.Hosts, s.Endpoints, s.Routes = nilIfEmpty(s.Hosts), nilIfEmpty(s.Endpoints), nilIfEmpty(s.Routes)
		out[i] = s
	}
	return out
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
