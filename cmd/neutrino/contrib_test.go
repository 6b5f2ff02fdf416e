package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/neutrino-sdn/neutrino/e2e"
	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

const (
	contribDir = "../../contrib/systemd"
	// unitBinary and unitConfig are where the units expect the binary and
	// its configuration.
	unitBinary = "/usr/local/bin/neutrino"
	unitConfig = "/etc/neutrino/neutrino.toml"
)

// unitExecs returns the command lines (ExecStart=, ExecStartPre=, …) of a
// systemd unit file, split into words.
func unitExecs(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && strings.HasPrefix(key, "Exec") {
			out = append(out, strings.Fields(value))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every command the units run is one the binary has, with flags it takes,
// and its configuration is the file the examples are written for.
func TestSystemdUnitsRunRealCommands(t *testing.T) {
	bin, err := e2e.Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"neutrino-server.service": {"db migrate", "server"},
		"neutrino-agent.service":  {"agent"},
	}
	for unit, commands := range want {
		t.Run(unit, func(t *testing.T) {
			var ran []string
			for _, argv := range unitExecs(t, filepath.Join(contribDir, unit)) {
				if argv[0] != unitBinary {
					t.Fatalf("%s runs %s, want %s", unit, argv[0], unitBinary)
				}
				root := rootCmd()
				cmd, rest, err := root.Find(argv[1:])
				if err != nil || cmd == root {
					t.Fatalf("%s: %q is no neutrino command: %v", unit, argv[1:], err)
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Fatalf("%s: neutrino %s: %v", unit, strings.Join(argv[1:], " "), err)
				}
				if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
					t.Fatalf("%s: neutrino %s: %v", unit, strings.Join(argv[1:], " "), err)
				}
				if c := cmd.Flags().Lookup("config"); c == nil || c.Value.String() != unitConfig {
					t.Errorf("%s: neutrino %s does not read %s", unit, strings.Join(argv[1:], " "), unitConfig)
				}
				// The real binary parses the same flags before it shows help.
				if out, err := exec.Command(bin, append(argv[1:], "--help")...).CombinedOutput(); err != nil {
					t.Fatalf("%s: the binary refuses %q: %v\n%s", unit, argv[1:], err, out)
				}
				ran = append(ran, strings.TrimPrefix(cmd.CommandPath(), "neutrino "))
			}
			if strings.Join(ran, ",") != strings.Join(commands, ",") {
				t.Fatalf("%s runs %q, want %q", unit, ran, commands)
			}
		})
	}
	t.Run("systemd-analyze verify", func(t *testing.T) {
		analyze := testenv.LookPathOrSkip(t, "systemd-analyze", "apt-get install systemd")
		dir := t.TempDir()
		var units []string
		for unit := range want {
			data, err := os.ReadFile(filepath.Join(contribDir, unit))
			if err != nil {
				t.Fatal(err)
			}
			// verify checks that the binary exists; point it at the one built.
			path := filepath.Join(dir, unit)
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), unitBinary, bin)), 0o644); err != nil {
				t.Fatal(err)
			}
			units = append(units, path)
		}
		out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
		// verify also loads the host's units; only what it says of ours counts.
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "neutrino") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
	})
}

// documentedOption matches an option's row in docs/configuration.md.
var documentedOption = regexp.MustCompile("(?m)^\\| `([a-z0-9_.<>]+)` \\|")

// The example configurations load and validate, and every key in them is a
// documented option (a misspelt key would otherwise be ignored silently).
func TestExampleConfigsLoad(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range documentedOption.FindAllStringSubmatch(string(doc), -1) {
		documented[strings.TrimSuffix(m[1], "<resource>")] = true
	}
	for name, check := range map[string]func(config.Config) bool{
		"neutrino-server.toml": func(c config.Config) bool {
			return strings.HasPrefix(c.DatabaseURL(), "postgres://") && c.NATS.Listen != ""
		},
		"neutrino-agent.toml": func(c config.Config) bool {
			return c.NATS.URL != "" && c.Agent.L2.DatapathType == "system"
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(contribDir, name)
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !check(cfg) {
				t.Fatalf("%s does not configure what it is for: %+v", name, cfg)
			}
			k := koanf.New(".")
			if err := k.Load(file.Provider(path), toml.Parser()); err != nil {
				t.Fatal(err)
			}
			for _, key := range k.Keys() {
				if !documented[key] && !(strings.HasPrefix(key, "quotas.") && documented["quotas."]) {
					t.Errorf("%s: %s is not an option of docs/configuration.md", name, key)
				}
			}
		})
	}
}
