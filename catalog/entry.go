package catalog

import "errors"

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
