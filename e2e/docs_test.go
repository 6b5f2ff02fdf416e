package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

// neutronExtensionList holds the 70 extension aliases the reference Neutron
// 21 deployment (ML2/OVS with L3 and DHCP agents) lists.
const neutronExtensionList = `
address-group address-scope agent agent-resources-synced
allowed-address-pairs auto-allocated-topology availability_zone
availability_zone_filter binding binding-extended default-subnetpools
dhcp_agent_scheduler dvr empty-string-filtering ext-gw-mode external-net
extra_dhcp_opt extraroute extraroute-atomic filter-validation
fip-port-details flavors floating-ip-port-forwarding-detail
floatingip-pools ip-substring-filtering l3-flavors l3-ha
l3-port-ip-change-not-allowed l3_agent_scheduler multi-provider net-mtu
net-mtu-writable network-ip-availability network_availability_zone
pagination port-device-profile port-mac-address-regenerate
port-mac-override port-numa-affinity-policy port-security
port-security-groups-filtering project-id provider quota-check-limit
quota_details quotas rbac-address-group rbac-address-scope rbac-policies
rbac-security-groups rbac-subnetpool revision-if-match router
router-admin-state-down-before-update router_availability_zone
security-group security-groups-normalized-cidr
security-groups-remote-address-group security-groups-shared-filtering
service-type sorting standard-attr-description standard-attr-revisions
standard-attr-tag standard-attr-timestamp stateful-security-group
subnet-service-types subnet_allocation subnet_onboard subnetpool-prefix-ops`

// aliasesInSection returns the first-column `alias` of every table row in
// the section of doc that starts with heading.
func aliasesInSection(t *testing.T, doc, heading string) []string {
	t.Helper()
	_, section, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/api.md has no %q section", heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var out []string
	for _, line := range strings.Split(section, "\n") {
		rest, ok := strings.CutPrefix(line, "| `")
		if !ok {
			continue
		}
		alias, _, _ := strings.Cut(rest, "`")
		out = append(out, alias)
	}
	return out
}

// TestAPIDocMatchesExtensions keeps docs/api.md true: its extensions table
// is exactly what GET /v2.0/extensions lists, and every extension of the
// reference Neutron is either there or among the documented gaps.
func TestAPIDocMatchesExtensions(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatalf("read docs/api.md: %v", err)
	}
	doc := string(data)
	implemented := aliasesInSection(t, doc, "## Extensions")
	gaps := aliasesInSection(t, doc, "## Gaps against Neutron")
	neutronExtensions := strings.Fields(neutronExtensionList)

	n := StartNeutrino(t)
	var served []string
	for _, e := range listItems(t, apitest.NewClient(t, n.URL, ""), "/v2.0/extensions", "extensions") {
		served = append(served, str(e["alias"]))
	}
	const fix = "; update the tables of docs/api.md"
	for _, a := range served {
		if !slices.Contains(implemented, a) {
			t.Errorf("GET /v2.0/extensions lists %s, which the Extensions table of docs/api.md lacks%s", a, fix)
		}
		if slices.Contains(gaps, a) {
			t.Errorf("%s is served but docs/api.md lists it among the gaps%s", a, fix)
		}
	}
	for _, a := range implemented {
		if !slices.Contains(served, a) {
			t.Errorf("docs/api.md lists %s as implemented, but GET /v2.0/extensions does not%s", a, fix)
		}
	}
	for _, a := range neutronExtensions {
		if !slices.Contains(implemented, a) && !slices.Contains(gaps, a) {
			t.Errorf("Neutron's extension %s is neither implemented nor a documented gap in docs/api.md%s", a, fix)
		}
	}
	if len(neutronExtensions) != 70 {
		t.Errorf("the reference list holds %d extensions, want 70", len(neutronExtensions))
	}
}
