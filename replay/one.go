package replay

import (
	"errors"
	"fmt"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/policy"
)

// ErrCannotDecide: a record cannot be decided again; the error names why
// (one of the Why* reasons, or a Skip* kind the record is).
var ErrCannotDecide = errors.New("cannot decide this record again")

// Input rebuilds the policy input of one recorded decision against set,
// as a replay does for each record, for callers that decide one record
// again (the console's explanation). A record a replay would skip or
// could not decide is refused with ErrCannotDecide and why.
func Input(set *policy.Set, rec *audit.Record) (policy.Input, error) {
	var in policy.Input
	switch {
	case rec.Unreadable != "":
		return in, fmt.Errorf("%w: %s", ErrCannotDecide, WhyUnreadable)
	case rec.Source == "delegation" || personsAnswer(rec):
		return in, fmt.Errorf("%w: a %s record is no request the policies decided", ErrCannotDecide, rec.Source)
	case rec.Inputs == nil && policyReason(rec):
		return in, fmt.Errorf("%w: %s", ErrCannotDecide, WhyBeforeInputs)
	case rec.Inputs == nil:
		return in, fmt.Errorf("%w: decided before the policies (%s)", ErrCannotDecide, rec.Reason)
	case rec.Inputs.AfterPolicy:
		return in, fmt.Errorf("%w: decided after the policies (%s)", ErrCannotDecide, rec.Reason)
	}
	b := newBuilder(set)
	if err := b.input(rec, &in); err != nil {
		var e *errNot
		if errors.As(err, &e) {
			return in, fmt.Errorf("%w: %s (%s)", ErrCannotDecide, e.why, e.key)
		}
		return in, fmt.Errorf("%w: %w", ErrCannotDecide, err)
	}
	return in, nil
}
