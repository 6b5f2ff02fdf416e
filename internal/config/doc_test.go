package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/neutrino-sdn/neutrino/internal/config"
	"github.com/neutrino-sdn/neutrino/internal/service"
)

// docPath is the user documentation of the configuration.
const docPath = "../../docs/configuration.md"

// sampleFromDoc returns the TOML block under "## Sample file".
func sampleFromDoc(t *testing.T, doc string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "## Sample file")
	if !ok {
		t.Fatalf("%s has no \"## Sample file\" section", docPath)
	}
	_, rest, ok = strings.Cut(rest, "```toml\n")
	if !ok {
		t.Fatalf("%s: no ```toml block in the sample section", docPath)
	}
	sample, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: unterminated ```toml block", docPath)
	}
	return sample
}

// optionKeys lists the dotted koanf key of every leaf option of Config;
// maps (quotas) are reported as "name.<resource>".
func optionKeys(typ reflect.Type, prefix string) []string {
	var out []string
	for f := range typ.Fields() {
		key := f.Tag.Get("koanf")
		if key == "" {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Struct:
			out = append(out, optionKeys(f.Type, prefix+key+".")...)
		case reflect.Map:
			out = append(out, prefix+key+".<resource>")
		default:
			out = append(out, prefix+key)
		}
	}
	return out
}

// TestDocumentedSampleIsTrue keeps docs/configuration.md true: its sample
// file loads through config.Load, names every option, and holds exactly the
// built-in defaults; its option table names every option too.
func TestDocumentedSampleIsTrue(t *testing.T) {
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read the configuration doc: %v", err)
	}
	doc := string(data)
	path := filepath.Join(t.TempDir(), "neutrino.toml")
	if err := os.WriteFile(path, []byte(sampleFromDoc(t, doc)), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load(sample): %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the sample does not validate: %v", err)
	}
	want := config.Default()
	want.StateDir = "/var/lib/neutrino" // the default as root, which the doc shows
	want.Quotas = service.DefaultQuotas()
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("the sample's values are not the defaults:\n got  %+v\n want %+v", cfg, want)
	}

	k := koanf.New(".")
	if err := k.Load(file.Provider(path), toml.Parser()); err != nil {
		t.Fatal(err)
	}
	inSample := k.Keys()
	for _, key := range optionKeys(reflect.TypeFor[config.Config](), "") {
		if prefix, ok := strings.CutSuffix(key, "<resource>"); ok {
			for name := range service.DefaultQuotas() {
				if !slices.Contains(inSample, prefix+name) {
					t.Errorf("the sample does not list %s%s", prefix, name)
				}
			}
		} else if !slices.Contains(inSample, key) {
			t.Errorf("the sample does not list option %s", key)
		}
		if !strings.Contains(doc, "| `"+key+"` |") {
			t.Errorf("the option table of %s has no row for `%s`", docPath, key)
		}
	}
	known := optionKeys(reflect.TypeFor[config.Config](), "")
	for _, key := range inSample {
		if !slices.Contains(known, key) && !strings.HasPrefix(key, "quotas.") {
			t.Errorf("the sample sets %s, which is not an option", key)
		}
	}
}

// TestDocumentedExamplesLoad loads and validates every TOML block of the doc.
func TestDocumentedExamplesLoad(t *testing.T) {
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read the configuration doc: %v", err)
	}
	blocks := strings.Split(string(data), "```toml\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("%s: want the sample and examples, found %d TOML blocks", docPath, len(blocks))
	}
	for i, b := range blocks {
		body, _, _ := strings.Cut(b, "```")
		path := filepath.Join(t.TempDir(), "example.toml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			t.Errorf("TOML block %d of %s: %v\n%s", i+1, docPath, err, body)
		}
	}
}
