package ipam

import (
	"errors"

	"github.com/neutrino-sdn/neutrino/internal/fault"
)

// Fault turns an *Error from this package into the API error Neutron
// would return, so callers can hand it straight back to the user. attr names
// the request attribute an attribute-level failure (TypeBadRequest) is
// about: Neutron reports those as "Invalid input for <attr>. Reason: <msg>.".
// Errors of other kinds are returned unchanged.
func Fault(attr string, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	if e.Type == TypeBadRequest {
		return fault.BadRequest("Invalid input for %s. Reason: %s.", attr, e.Message)
	}
	return fault.New(e.HTTPStatus(), e.Type, "%s", e.Message)
}
