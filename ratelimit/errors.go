package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadLimit: Allow was called with a non-positive limit or a window under
// a second. Policy loading refuses such values, so this is a programming
// error; the engine treats it as an internal failure (fail closed).
var ErrBadLimit = errors.New("ratelimit: bad limit")

func errBadLimit(limit int, size time.Duration) error {
	return fmt.Errorf("%w: %d per %s", ErrBadLimit, limit, size)
}
