package xds

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// withWasm is testOptions with the wasm filter (its ECDS resource too).
func withWasm() Options {
	o := testOptions
	o.Wasm = &Wasm{Path: "/etc/envoy/meshguard-filter.wasm", HTTPHost: "10.0.0.5", HTTPPort: 3100, Config: []byte(`{"version":1}`)}
	return o
}

// TestBuildIsDeterministic: the same catalogue built many times gives one
// digest, so a reload that changes nothing pushes nothing. (Packed with
// anypb.New, the routes' context extensions — a map — came out in random
// order: 200 builds of the example catalogue gave 11 digests.)
func TestBuildIsDeterministic(t *testing.T) {
	const builds = 200
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"ext_authz", testOptions},
		{"wasm filter", withWasm()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := exampleCatalogue(t)
			digests := map[[32]byte]int{}
			for range builds {
				r, err := Build(c, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				d, err := r.digest()
				if err != nil {
					t.Fatal(err)
				}
				digests[d]++
			}
			if len(digests) != 1 {
				t.Fatalf("%d builds of one catalogue gave %d digests", builds, len(digests))
			}
		})
	}
}

// TestEveryAnyIsDeterministic: every Any in every generated resource, at
// any depth (an Any inside the message another Any holds too), holds its
// message's deterministic encoding.
func TestEveryAnyIsDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"ext_authz", testOptions},
		{"wasm filter", withWasm()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A map packed at random is in order by chance now and then:
			// several builds make that chance negligible.
			c := exampleCatalogue(t)
			for range 20 {
				r, err := Build(c, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, group := range [][]proto.Message{asMessages(r.Listeners), asMessages(r.Routes), asMessages(r.Clusters), asMessages(r.Endpoints), asMessages(r.Extensions)} {
					for _, m := range group {
						n += checkAnys(t, m.ProtoReflect())
					}
				}
				if n == 0 {
					t.Fatal("no Any found: the walk is broken")
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// checkAnys walks m and every message its Anys hold, failing on an Any
// whose bytes are not its message's deterministic encoding; it returns how
// many Anys it checked.
func checkAnys(t *testing.T, m protoreflect.Message) int {
	t.Helper()
	n := 0
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("Any %s: %v", a.GetTypeUrl(), err)
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.GetValue(), want) {
			t.Errorf("Any %s is not packed deterministically", a.GetTypeUrl())
		}
		return 1 + checkAnys(t, inner.ProtoReflect())
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				n += checkAnys(t, v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				n += checkAnys(t, mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			n += checkAnys(t, v.Message())
		}
		return true
	})
	return n
}
