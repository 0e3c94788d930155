package api_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
)

func TestDurationJSON(t *testing.T) {
	good := map[string]time.Duration{`"24h"`: 24 * time.Hour, `"90m"`: 90 * time.Minute, `3600`: time.Hour, `0`: 0, `null`: 0}
	for in, want := range good {
		var d api.Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.D() != want {
			t.Errorf("%s: %v, %v; want %v", in, d.D(), err, want)
		}
	}
	for _, in := range []string{`"forever"`, `"-1h"`, `-5`, `1.5`, `true`, `{}`, `99999999999999999999`} {
		var v struct {
			TTL api.Duration `json:"ttl"`
		}
		err := json.Unmarshal([]byte(`{"ttl":`+in+`}`), &v)
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) || te.Field != "ttl" {
			t.Errorf("%s: error %v, want an UnmarshalTypeError naming ttl", in, err)
		}
	}
	out, err := json.Marshal(api.Duration(90 * time.Minute))
	if err != nil || string(out) != `"1h30m0s"` {
		t.Errorf("Marshal = %s, %v", out, err)
	}
}

func TestLocatedErrorString(t *testing.T) {
	tests := []struct {
		name string
		e    api.LocatedError
		want string
	}{
		{"everything", api.LocatedError{File: "p.yaml", Line: 4, Field: "rules[0].effect", Message: "expected allow or deny"}, "p.yaml:4: rules[0].effect: expected allow or deny"},
		{"no line", api.LocatedError{File: "p.yaml", Field: "name", Message: "required"}, "p.yaml: name: required"},
		{"no field", api.LocatedError{File: "stored:x", Line: 2, Message: "bad YAML"}, "stored:x:2: bad YAML"},
	}
	for _, tc := range tests {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("%s: String() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
