// Package fault owns the errors neutrino returns to API callers: each carries
// the HTTP status and the Neutron error type, and renders as Neutron's
// {"NeutronError": {"type", "message", "detail"}} body.
package fault

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an error that reaches the API caller as a Neutron error.
type Error struct {
	Status  int    // HTTP status code
	Type    string // Neutron exception class name, e.g. "NetworkNotFound"
	Message string
	Detail  string
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// New makes an error with the given status, type and formatted message.
func New(status int, typ, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// As returns the *Error inside err, if there is one.
func As(err error) (*Error, bool) {
	var fe *Error
	if errors.As(err, &fe) {
		return fe, true
	}
	return nil, false
}

// BadRequest is Neutron's generic 400 for invalid input.
func BadRequest(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "HTTPBadRequest", format, args...)
}

// InvalidInput is Neutron's InvalidInput (400), used for semantic input errors.
func InvalidInput(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "InvalidInput",
		Message: "Invalid input for operation: " + fmt.Sprintf(format, args...)}
}

// NotFound is the 404 for a resource that does not exist or is not visible.
// typ is the Neutron type, e.g. "NetworkNotFound".
func NotFound(typ, format string, args ...any) *Error {
	return New(http.StatusNotFound, typ, format, args...)
}

// Conflict is a 409 with a specific Neutron type such as "IpAddressInUse".
func Conflict(typ, format string, args ...any) *Error {
	return New(http.StatusConflict, typ, format, args...)
}

// Forbidden is the 403 for an action the caller's role does not allow.
func Forbidden(format string, args ...any) *Error {
	return New(http.StatusForbidden, "HTTPForbidden", format, args...)
}

// PolicyNotAuthorized is Neutron's 403 for a policy refusal.
func PolicyNotAuthorized(action string) *Error {
	return New(http.StatusForbidden, "PolicyNotAuthorized",
		"(rule:%s) is disallowed by policy", action)
}

// Unauthorized is the 401 for a missing or invalid token.
func Unauthorized() *Error {
	return New(http.StatusUnauthorized, "HTTPUnauthorized",
		"The request you have made requires authentication.")
}

// PreconditionFailed is the 412 for a failed If-Match revision check.
func PreconditionFailed(format string, args ...any) *Error {
	return New(http.StatusPreconditionFailed, "RevisionNumberConstraintFailed", format, args...)
}

// Internal hides an unexpected error behind a 500 without leaking internals.
func Internal() *Error {
	return New(http.StatusInternalServerError, "HTTPInternalServerError",
		"Request Failed: internal server error while processing your request.")
}
