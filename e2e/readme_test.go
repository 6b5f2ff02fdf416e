package e2e

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEQuickStart runs the openstack commands of the README's quick
// start, as written, against a fresh neutrino, so the README stays true.
func TestREADMEQuickStart(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	_, section, ok := strings.Cut(string(data), "## Quick start")
	if !ok {
		t.Fatal(`README.md has no "## Quick start" section`)
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatal("README quick start has no ```sh block")
	}
	block, _, _ = strings.Cut(block, "```")

	n := StartNeutrino(t)
	cli := OpenstackCLI(t, n)
	var ran int
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "export":
			if !strings.Contains(line, "OS_AUTH_TYPE=none") || !strings.Contains(line, "OS_ENDPOINT=http://127.0.0.1:9696") {
				t.Errorf("README quick start exports %q; want OS_AUTH_TYPE=none and the default endpoint", line)
			}
		case fields[0] == "openstack":
			cli.OK(fields[1:]...)
			ran++
		default:
			t.Errorf("README quick start line %q is neither an export nor an openstack command", line)
		}
	}
	if ran == 0 {
		t.Fatal("README quick start runs no openstack command")
	}
}
