package ipam

import (
	"fmt"
	"net/http"
)

// Neutron exception type names used by this package.
const (
	// TypeBadRequest marks an attribute-level validation failure. Its
	// Message is only the reason; the API layer wraps it as Neutron does:
	// "Invalid input for <attr>. Reason: <message>.".
	TypeBadRequest                         = "HTTPBadRequest"
	TypeInvalidInput                       = "InvalidInput"
	TypeInvalidAllocationPool              = "InvalidAllocationPool"
	TypeOverlappingAllocationPools         = "OverlappingAllocationPools"
	TypeOutOfBoundsAllocationPool          = "OutOfBoundsAllocationPool"
	TypeGatewayConflictWithAllocationPools = "GatewayConflictWithAllocationPools"
	TypeHostRoutesExhausted                = "HostRoutesExhausted"
	TypeDNSNameServersExhausted            = "DNSNameServersExhausted"
	TypeSubnetAllocationError              = "SubnetAllocationError"
	TypeMinPrefixSubnetAllocationError     = "MinPrefixSubnetAllocationError"
	TypeMaxPrefixSubnetAllocationError     = "MaxPrefixSubnetAllocationError"
	TypeIllegalSubnetPoolPrefixBounds      = "IllegalSubnetPoolPrefixBounds"
	TypeUnsupportedMinSubnetPoolPrefix     = "UnsupportedMinSubnetPoolPrefix"
	TypeEmptySubnetPoolPrefixList          = "EmptySubnetPoolPrefixList"
	TypePrefixVersionMismatch              = "PrefixVersionMismatch"
)

// Error is a validation or allocation failure as Neutron reports it: Type
// is the Neutron exception class name and Message its text.
type Error struct {
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// HTTPStatus is the status code Neutron answers with for this error type.
func (e *Error) HTTPStatus() int {
	// Neutron's fault map: BadRequest 400, Conflict and InUse 409; a plain
	// NeutronException (SubnetAllocationError) is a 500.
	switch e.Type {
	case TypeOverlappingAllocationPools, TypeGatewayConflictWithAllocationPools:
		return http.StatusConflict
	case TypeSubnetAllocationError:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

func newError(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Message: fmt.Sprintf(format, args...)}
}

// badAttr is an attribute-level failure; msg is the bare reason.
func badAttr(format string, args ...any) *Error {
	return newError(TypeBadRequest, format, args...)
}

// invalidInput is Neutron's InvalidInput(error_message=...).
func invalidInput(format string, args ...any) *Error {
	return &Error{Type: TypeInvalidInput,
		Message: "Invalid input for operation: " + fmt.Sprintf(format, args...) + "."}
}
