package ipam

import (
	"errors"
	"net/http"
	"testing"
)

func TestErrorStatus(t *testing.T) {
	for typ, want := range map[string]int{
		TypeBadRequest:                         http.StatusBadRequest,
		TypeInvalidInput:                       http.StatusBadRequest,
		TypeInvalidAllocationPool:              http.StatusBadRequest,
		TypeOutOfBoundsAllocationPool:          http.StatusBadRequest,
		TypeOverlappingAllocationPools:         http.StatusConflict,
		TypeGatewayConflictWithAllocationPools: http.StatusConflict,
		TypeSubnetAllocationError:              http.StatusInternalServerError,
		TypeMaxPrefixSubnetAllocationError:     http.StatusBadRequest,
	} {
		e := &Error{Type: typ, Message: "m"}
		if got := e.HTTPStatus(); got != want {
			t.Errorf("%s: status %d, want %d", typ, got, want)
		}
		if e.Error() != "m" {
			t.Errorf("Error() = %q", e.Error())
		}
	}
	var e *Error
	if !errors.As(invalidInput("x %d", 1), &e) || e.Message != "Invalid input for operation: x 1." {
		t.Fatalf("invalidInput: %#v", e)
	}
}
