// Package yamldoc decodes the YAML that operators and callers hand
// MeshGuard (SERVICES_FILE, PROXIES_FILE, the config file's routes, policy
// test files) without letting the decoder's own panics through.
//
// gopkg.in/yaml.v3 panics on some malformed merge keys when it decodes into
// a Go struct (`- &a 0` then `- {<<,0,[]}`: "hash of unhashable type").
// A bad file must be refused with an error, not stop the server at start
// or drop an admin request's connection: every struct decode of outside
// YAML goes through Decode.
package yamldoc

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// ErrMalformed is returned, wrapped, when the decoder panicked on the input.
var ErrMalformed = errors.New("malformed YAML")

// Decode is dec.Decode(v), with a panic of the decoder returned as an
// error wrapping ErrMalformed.
func Decode(dec *yaml.Decoder, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrMalformed, p)
		}
	}()
	return dec.Decode(v)
}
