package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/config"
)

// tomlList writes a string list as the doc does: ["a", "b"].
func tomlList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = `"` + s + `"`
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// TestDocumentedAllInOneDefaults keeps docs/configuration.md true about
// the defaults `neutrino up` adds to Default's (roles and the external
// bridge mapping), and about which of them `neutrino agent` lacks.
func TestDocumentedAllInOneDefaults(t *testing.T) {
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read the configuration doc: %v", err)
	}
	doc := strings.Join(strings.Fields(string(data)), " ")
	up, agent := config.AllInOne(), config.Default()
	for _, want := range []string{
		"`agent.roles = " + tomlList(up.Agent.Roles) + "`",
		"`agent.l2.bridge_mappings = " + tomlList(up.Agent.L2.BridgeMappings) + "`",
		"| `agent.roles` | `" + tomlList(agent.Agent.Roles) + "` |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("%s does not say %s", docPath, want)
		}
	}
	if !strings.Contains(doc, "up` makes `"+config.AllInOneExternalBridge+"`") {
		t.Errorf("%s does not say that up makes %s", docPath, config.AllInOneExternalBridge)
	}
	// Everything else is Default's, as the doc's table says.
	up.Agent.Roles, up.Agent.L2.BridgeMappings = agent.Agent.Roles, agent.Agent.L2.BridgeMappings
	if !reflect.DeepEqual(up, agent) {
		t.Errorf("AllInOne differs from Default in more than the documented roles and bridge mappings:\n%+v\n%+v", up, agent)
	}
}

// TestLoadOverKeepsBaseUnlessTheFileSays: options the file leaves out keep
// the base's values (up's roles), and the file's win.
func TestLoadOverKeepsBaseUnlessTheFileSays(t *testing.T) {
	cfg, err := config.LoadOver(config.AllInOne(), "")
	if err != nil || !reflect.DeepEqual(cfg, config.AllInOne()) {
		t.Fatalf("LoadOver without a file: %+v, %v", cfg, err)
	}
	path := filepath.Join(t.TempDir(), "up.toml")
	if err := os.WriteFile(path, []byte("[agent]\nroles = [\"l2\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.LoadOver(config.AllInOne(), path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Agent.Roles, []string{"l2"}) || !reflect.DeepEqual(cfg.Agent.L2.BridgeMappings, config.AllInOne().Agent.L2.BridgeMappings) {
		t.Errorf("roles %v, bridge mappings %v; want the file's roles and up's mappings", cfg.Agent.Roles, cfg.Agent.L2.BridgeMappings)
	}
}
