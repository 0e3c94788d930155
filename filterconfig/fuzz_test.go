package filterconfig_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
)

// FuzzParse: a configuration is refused with an ErrInvalid, or it is one
// the filter can carry and rebuild: marshalled and parsed again it is the
// same configuration (and marshals to the same bytes), and New compiles
// both or refuses both, with an ErrInvalid. A refusal never panics.
func FuzzParse(f *testing.F) {
	f.Add(filtertest.New(f).Config())
	f.Add([]byte(`{"version":1,"jwks":{"keys":[]},"agents":[],"policies":[],"meshguard":{"cluster":"m","token":"t"}}`))
	f.Add([]byte(`{"version":1,"source":{"cluster":"m","token":"t","refreshMs":100}}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := filterconfig.Parse(data)
		if err != nil {
			if !errors.Is(err, filterconfig.ErrInvalid) || c != nil {
				t.Fatalf("a refusal is not an ErrInvalid, or came with a configuration: %v, %v", c, err)
			}
			return
		}
		out := marshal(t, c)
		back, err := filterconfig.Parse(out)
		if err != nil {
			t.Fatalf("a parsed configuration, marshalled, is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normal(t, c), normal(t, back)) {
			t.Fatalf("a parsed configuration changed through JSON:\n got %+v\nwant %+v", back, c)
		}
		if again := marshal(t, back); string(again) != string(out) {
			t.Fatalf("a configuration marshals differently the second time:\n%s\n%s", out, again)
		}
		_, err1 := filterdecider.New(c, filterdecider.Options{})
		_, err2 := filterdecider.New(back, filterdecider.Options{})
		switch {
		case err1 != nil && !errors.Is(err1, filterconfig.ErrInvalid):
			t.Fatalf("New: an error that is not an ErrInvalid: %v", err1)
		case (err1 == nil) != (err2 == nil):
			t.Fatalf("New compiles one of a configuration and its round trip, not the other: %v / %v", err1, err2)
		}
	})
}

// marshal writes c as the filter is given it: the whole configuration as
// Generate writes it, or, for one that names its source, the version and
// the source alone (json.Marshal of such a Config writes "jwks":null,
// which Parse rightly refuses beside a source; nothing marshals one).
func marshal(t *testing.T, c *filterconfig.Config) []byte {
	t.Helper()
	var v any = c
	if c.Source != nil {
		v = struct {
			Version int                  `json:"version"`
			Source  *filterconfig.Source `json:"source"`
		}{c.Version, c.Source}
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("a parsed configuration does not marshal: %v", err)
	}
	return out
}

// normal is c with what JSON does not tell apart made equal: an empty list
// and none, and the spelling of a raw JSON value (json.Marshal compacts
// and escapes it).
func normal(t *testing.T, c *filterconfig.Config) any {
	t.Helper()
	v := reflect.New(reflect.TypeOf(*c)).Elem()
	v.Set(reflect.ValueOf(*c))
	normalValue(t, v)
	return v.Interface()
}

var rawType = reflect.TypeFor[json.RawMessage]()

func normalValue(t *testing.T, v reflect.Value) {
	switch {
	case v.Type() == rawType:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		canon, err := json.Marshal(v.Interface())
		if err != nil {
			t.Fatalf("a raw JSON value that does not marshal: %v", err)
		}
		v.SetBytes(canon)
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		for i := range cp.Len() {
			normalValue(t, cp.Index(i))
		}
		v.Set(cp)
	case v.Kind() == reflect.Pointer && !v.IsNil():
		cp := reflect.New(v.Type().Elem())
		cp.Elem().Set(v.Elem())
		normalValue(t, cp.Elem())
		v.Set(cp)
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalValue(t, v.Field(i))
			}
		}
	}
}
