package ipam

import (
	"net/netip"
	"testing"
)

func TestParseHostRoute(t *testing.T) {
	r, err := ParseHostRoute("10.20.0.0/32", "10.100.1.1")
	if err != nil || r != (HostRoute{prefix("10.20.0.0/32"), addr("10.100.1.1")}) {
		t.Fatalf("ParseHostRoute = %v, %v", r, err)
	}
	_, err = ParseHostRoute("10.20.0.1/24", "10.100.1.1")
	wantErr(t, err, TypeBadRequest, "'10.20.0.1/24' is not a valid CIDR")
	_, err = ParseHostRoute("127.0.0.0/8", "10.100.1.1")
	wantErr(t, err, TypeBadRequest, "'127.0.0.0/8' is not a routable CIDR")
	_, err = ParseHostRoute("10.20.0.0/24", "10.100.1")
	wantErr(t, err, TypeBadRequest, "'10.100.1' is not a valid IP address")
}

func TestValidateHostRoutes(t *testing.T) {
	rt := func(d, n string) HostRoute { return HostRoute{prefix(d), addr(n)} }
	two := []HostRoute{rt("10.20.0.0/24", "10.0.0.1"), rt("0.0.0.0/0", "10.0.0.254")}
	wantErr(t, ValidateHostRoutes(two, 4, DefaultMaxHostRoutes, ""), "", "")
	wantErr(t, ValidateHostRoutes(nil, 4, 0, ""), "", "")
	wantErr(t, ValidateHostRoutes(two, 4, -1, ""), "", "")
	wantErr(t, ValidateHostRoutes(two, 4, 1, ""), TypeHostRoutesExhausted,
		"Unable to complete operation for new subnet. The number of host routes exceeds the limit 1.")
	wantErr(t, ValidateHostRoutes(two, 4, 1, "4a7e5f36-0000-4000-8000-000000000001"), TypeHostRoutesExhausted,
		"Unable to complete operation for 4a7e5f36-0000-4000-8000-000000000001. The number of host routes exceeds the limit 1.")
	dup := []HostRoute{rt("10.20.0.0/24", "10.0.0.1"), rt("10.30.0.0/24", "10.0.0.1"), rt("10.20.0.0/24", "10.0.0.1")}
	wantErr(t, ValidateHostRoutes(dup, 4, 1, ""), TypeBadRequest,
		"Duplicate hostroute '{'destination': '10.20.0.0/24', 'nexthop': '10.0.0.1'}'")
	wantErr(t, ValidateHostRoutes([]HostRoute{rt("10.20.0.0/24", "2001:db8::1")}, 4, 20, ""), TypeInvalidInput,
		"Invalid input for operation: nexthop '2001:db8::1' does not match the ip_version '4'.")
	wantErr(t, ValidateHostRoutes([]HostRoute{rt("2001::/64", "10.0.0.1")}, 4, 20, ""), TypeInvalidInput,
		"Invalid input for operation: destination '2001::/64' does not match the ip_version '4'.")
	wantErr(t, ValidateHostRoutes([]HostRoute{rt("2001::/64", "2003::1")}, 6, 20, ""), "", "")
}

func TestNameservers(t *testing.T) {
	a, err := ParseNameserver("8.8.8.8")
	if err != nil || a != addr("8.8.8.8") {
		t.Fatalf("ParseNameserver = %v, %v", a, err)
	}
	_, err = ParseNameserver("8.8.8")
	wantErr(t, err, TypeBadRequest, "'8.8.8' is not a valid nameserver. '8.8.8' is not a valid IP address")
	_, err = ParseNameserver("dns.example.com")
	wantErr(t, err, TypeBadRequest, "'dns.example.com' is not a valid nameserver. 'dns.example.com' is not a valid IP address")

	ns := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, addr(x))
		}
		return out
	}
	wantErr(t, ValidateNameservers(ns("8.8.4.4", "8.8.8.8"), 4, DefaultMaxDNSNameservers, ""), "", "")
	wantErr(t, ValidateNameservers(ns("2001:4860:4860::8844", "2001:4860:4860::8888"), 6, 5, ""), "", "")
	wantErr(t, ValidateNameservers(ns("8.8.4.4", "8.8.8.8", "8.8.4.4"), 4, 5, ""), TypeBadRequest, "Duplicate nameserver '8.8.4.4'")
	wantErr(t, ValidateNameservers(ns("1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6"), 4, 5, ""),
		TypeDNSNameServersExhausted, "Unable to complete operation for new subnet. The number of DNS nameservers exceeds the limit 5.")
	wantErr(t, ValidateNameservers(ns("1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6"), 4, -1, ""), "", "")
	wantErr(t, ValidateNameservers(ns("8.8.8.8", "2001:4860:4860::8888"), 4, 5, ""), TypeInvalidInput,
		"Invalid input for operation: dns_nameserver '2001:4860:4860::8888' does not match the ip_version '4'.")
}
