package ipam

import (
	"errors"
	"net/http"
	"net/netip"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/fault"
)

func TestFault(t *testing.T) {
	_, err := ParseIP("10.0.0.01")
	fe, ok := fault.As(Fault("gateway_ip", err))
	if !ok || fe.Status != http.StatusBadRequest || fe.Type != "HTTPBadRequest" ||
		fe.Message != "Invalid input for gateway_ip. Reason: '10.0.0.01' is not an accepted IP address, '10.0.0.1' is recommended." {
		t.Fatalf("attribute error: %+v", fe)
	}
	cidr := netip.MustParsePrefix("10.0.0.0/24")
	err = ValidatePools([]Pool{{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.9")}}, cidr, netip.MustParseAddr("10.0.0.5"))
	fe, ok = fault.As(Fault("allocation_pools", err))
	if !ok || fe.Status != http.StatusConflict || fe.Type != TypeGatewayConflictWithAllocationPools {
		t.Fatalf("gateway conflict: %+v", fe)
	}
	err = ValidateGateway(cidr, netip.MustParseAddr("10.0.0.255"))
	fe, ok = fault.As(Fault("gateway_ip", err))
	if !ok || fe.Status != http.StatusBadRequest || fe.Type != "InvalidInput" ||
		fe.Message != "Invalid input for operation: Gateway is not valid on subnet." {
		t.Fatalf("invalid input: %+v", fe)
	}
	other := errors.New("boom")
	if Fault("x", other) != other {
		t.Fatal("foreign errors must pass through")
	}
}
