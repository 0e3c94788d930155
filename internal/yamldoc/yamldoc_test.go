package yamldoc_test

import (
	"bytes"
	"errors"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/internal/yamldoc"
)

// panicky makes yaml.v3 panic when it decodes into a struct (found by
// catalog's FuzzParse).
const panicky = "items:\n  - &s 0000000\n  - {<<,000,[]}"

func TestDecode(t *testing.T) {
	type doc struct {
		Items []struct {
			Name string `yaml:"name"`
		} `yaml:"items"`
	}
	tests := []struct {
		name      string
		in        string
		wantErr   error
		wantItems int
	}{
		{name: "a good document", in: "items:\n  - name: a\n  - name: b\n", wantItems: 2},
		{name: "a merge key the decoder panics on", in: panicky, wantErr: yamldoc.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d doc
			err := yamldoc.Decode(yaml.NewDecoder(bytes.NewReader([]byte(tt.in))), &d)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(d.Items) != tt.wantItems {
				t.Fatalf("items %d, err %v; want %d", len(d.Items), err, tt.wantItems)
			}
		})
	}
}
