package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// packet encodes one subunit v2 packet, as stestr writes them.
type packet struct {
	id, status string
	tags       []string
	file, mime string
	content    []byte
	timestamp  bool
}

func varint(v uint32) []byte {
	switch {
	case v < 1<<6:
		return []byte{byte(v)}
	case v < 1<<14:
		return []byte{0x40 | byte(v>>8), byte(v)}
	case v < 1<<22:
		return []byte{0x80 | byte(v>>16), byte(v >> 8), byte(v)}
	default:
		return []byte{0xc0 | byte(v>>24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
}

func str(s string) []byte { return append(varint(uint32(len(s))), s...) }

func (p packet) encode() []byte {
	flags := uint16(subunitVersion2) << 12
	flags |= uint16(slices.Index(subunitStatuses[:], p.status))
	var body []byte
	if p.timestamp {
		flags |= flagTimestamp
		body = append(body, 0x5f, 0, 0, 1)
		body = append(body, varint(123456)...)
	}
	if p.id != "" {
		flags |= flagTestID
		body = append(body, str(p.id)...)
	}
	if p.tags != nil {
		flags |= flagTags
		body = append(body, varint(uint32(len(p.tags)))...)
		for _, t := range p.tags {
			body = append(body, str(t)...)
		}
	}
	if p.mime != "" {
		flags |= flagMIMEType
		body = append(body, str(p.mime)...)
	}
	if p.file != "" {
		flags |= flagFileContent
		body = append(body, str(p.file)...)
		body = append(body, varint(uint32(len(p.content)))...)
		body = append(body, p.content...)
	}
	// The length counts the whole packet, its own bytes included.
	n := 1 + 2 + len(body) + 4
	length := varint(uint32(n + 1))
	if len(length) > 1 {
		length = varint(uint32(n + len(length)))
	}
	out := []byte{subunitSignature}
	out = binary.BigEndian.AppendUint16(out, flags)
	out = append(out, length...)
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out))
}

func stream(ps ...packet) []byte {
	var b []byte
	for _, p := range ps {
		b = append(b, p.encode()...)
	}
	return b
}

func TestReadSubunit(t *testing.T) {
	long := strings.Repeat("Traceback line\n", 40) // needs a 2-byte length
	data := stream(
		packet{id: "a.B.test_one[id-1,smoke]", status: "inprogress", timestamp: true},
		packet{id: "a.B.test_one[id-1,smoke]", status: "success", tags: []string{"worker-0"}, timestamp: true},
		packet{id: "a.B.test_two", file: "traceback", mime: "text/x-traceback; charset=utf8", content: []byte(long)},
		packet{id: "a.B.test_two", status: "fail"},
	)
	// Stray output between packets is skipped.
	data = append([]byte("noise\n"), data...)
	var got []Event
	if err := ReadSubunit(bytes.NewReader(data), func(ev Event) error {
		got = append(got, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d events, want 4: %+v", len(got), got)
	}
	if got[1].TestID != "a.B.test_one[id-1,smoke]" || got[1].Status != "success" || !slices.Equal(got[1].Tags, []string{"worker-0"}) {
		t.Errorf("event 1 = %+v", got[1])
	}
	if got[2].FileName != "traceback" || string(got[2].FileBytes) != long || got[2].Status != "" {
		t.Errorf("event 2 = %+v", got[2])
	}
	if got[3].Status != "fail" {
		t.Errorf("event 3 = %+v", got[3])
	}
}

func TestBaseID(t *testing.T) {
	for in, want := range map[string]string{
		"a.B.test_x":                            "a.B.test_x",
		"a.B.test_x[id-1,smoke]":                "a.B.test_x",
		"a.B.test_rule_create[id-8a59](egress)": "a.B.test_rule_create(egress)",
		"setUpClass (a.B)":                      "setUpClass (a.B)",
		" a.B.test_x[id-1] ":                    "a.B.test_x",
	} {
		if got := baseID(in); got != want {
			t.Errorf("baseID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadSubunitRejectsCorruptPackets(t *testing.T) {
	good := packet{id: "a.B.test_one", status: "success"}.encode()
	badCRC := slices.Clone(good)
	badCRC[len(badCRC)-1] ^= 0xff
	truncated := good[:len(good)-3]
	for name, data := range map[string][]byte{"bad checksum": badCRC, "truncated": truncated} {
		err := ReadSubunit(bytes.NewReader(data), func(Event) error { return nil })
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// writeRun writes a run's subunit stream, selection and expected passes.
func writeRun(t *testing.T, dir string, expected []string) (subunitPath, selectedPath, expectedPath string) {
	t.Helper()
	subunitPath = filepath.Join(dir, "last.subunit")
	selectedPath = filepath.Join(dir, "selected.txt")
	expectedPath = filepath.Join(dir, "expected.txt")
	data := stream(
		packet{id: "tempest.api.network.test_a.A.test_pass[id-1]", status: "success"},
		packet{id: "tempest.api.network.test_a.A.test_fail[id-2]", file: "traceback", content: []byte("Traceback:\n  File x\nNotFound: 404\n")},
		packet{id: "tempest.api.network.test_a.A.test_fail[id-2]", status: "fail"},
		packet{id: "tempest.api.network.test_a.A.test_skip", file: "reason", content: []byte("no extension")},
		packet{id: "tempest.api.network.test_a.A.test_skip", status: "skip"},
		packet{id: "setUpClass (neutron_tempest_plugin.api.test_b.B)", file: "reason", content: []byte("Extension trunk is not enabled")},
		packet{id: "setUpClass (neutron_tempest_plugin.api.test_b.B)", status: "skip"},
		packet{id: "setUpClass (neutron_tempest_plugin.api.test_c.C)", file: "traceback", content: []byte("KeyError: 'agents'")},
		packet{id: "setUpClass (neutron_tempest_plugin.api.test_c.C)", status: "fail"},
		packet{id: "tearDownClass (tempest.api.network.test_a.A)", file: "traceback", content: []byte("KeyError: 'security_groups'")},
		packet{id: "tearDownClass (tempest.api.network.test_a.A)", status: "fail"},
	)
	selected := strings.Join([]string{
		"tempest.api.network.test_a.A.test_pass[id-1]",
		"tempest.api.network.test_a.A.test_fail[id-2]",
		"tempest.api.network.test_a.A.test_skip[id-3]",
		"neutron_tempest_plugin.api.test_b.B.test_one[id-4]",
		"neutron_tempest_plugin.api.test_b.B.test_two[id-5]",
		"neutron_tempest_plugin.api.test_c.C.test_three[id-6]",
		"neutron_tempest_plugin.api.test_d.D.test_never_ran[id-7]",
	}, "\n") + "\n"
	for path, content := range map[string][]byte{
		subunitPath:  data,
		selectedPath: []byte(selected),
		expectedPath: []byte("# comment\n" + strings.Join(expected, "\n") + "\n"),
	} {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return subunitPath, selectedPath, expectedPath
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestRunCountsEverySelectedTest(t *testing.T) {
	dir := t.TempDir()
	sub, sel, exp := writeRun(t, dir, []string{"tempest.api.network.test_a.A.test_pass"})
	out := filepath.Join(dir, "out")
	var stdout bytes.Buffer
	code, err := run(sub, sel, exp, out, false, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("exit code %d with no regression, want 0\n%s", code, stdout.String())
	}
	summary := stdout.String()
	for _, want := range []string{
		// passed failed skipped not-run
		"tempest.api.network                1       1       1       0",
		"neutron_tempest_plugin.api         0       1       2       1",
		"total                              1       2       3       1",
		"  neutron_tempest_plugin.api.test_c.C.test_three\n",
		"  tearDownClass (tempest.api.network.test_a.A)\n",
		"no regressions",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	if got, want := readLines(t, filepath.Join(out, "failed.txt")), []string{
		"neutron_tempest_plugin.api.test_c.C.test_three",
		"tempest.api.network.test_a.A.test_fail",
	}; !slices.Equal(got, want) {
		t.Errorf("failed.txt = %q, want %q", got, want)
	}
	failures, _ := os.ReadFile(filepath.Join(out, "failures.txt"))
	for _, want := range []string{"NotFound: 404", "setUpClass: KeyError: 'agents'", "KeyError: 'security_groups'"} {
		if !bytes.Contains(failures, []byte(want)) {
			t.Errorf("failures.txt lacks %q:\n%s", want, failures)
		}
	}
	skips, _ := os.ReadFile(filepath.Join(out, "skipped.txt"))
	if !bytes.Contains(skips, []byte("neutron_tempest_plugin.api.test_b.B.test_two : setUpClass: Extension trunk is not enabled")) {
		t.Errorf("skipped.txt lacks the class's skip reason:\n%s", skips)
	}
	if got := readLines(t, filepath.Join(out, "not-run.txt")); !slices.Equal(got, []string{"neutron_tempest_plugin.api.test_d.D.test_never_ran"}) {
		t.Errorf("not-run.txt = %q", got)
	}
}

func TestRunFailsOnRegression(t *testing.T) {
	dir := t.TempDir()
	sub, sel, exp := writeRun(t, dir, []string{
		"tempest.api.network.test_a.A.test_pass",
		"tempest.api.network.test_a.A.test_fail",
		"neutron_tempest_plugin.api.test_d.D.test_never_ran",
		"tempest.api.network.test_z.Z.test_not_selected",
	})
	var stdout bytes.Buffer
	code, err := run(sub, sel, exp, filepath.Join(dir, "out"), false, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 {
		t.Errorf("exit code %d with regressions, want 1", code)
	}
	for _, want := range []string{
		"REGRESSIONS: 2 tests",
		"  tempest.api.network.test_a.A.test_fail\n",
		"  neutron_tempest_plugin.api.test_d.D.test_never_ran\n",
		"1 expected passes were outside this run's selection",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestUpdateExpectedKeepsTestsOutsideTheSelection(t *testing.T) {
	dir := t.TempDir()
	sub, sel, exp := writeRun(t, dir, []string{
		"tempest.api.network.test_a.A.test_fail", // in the selection: replaced
		"tempest.api.network.test_z.Z.test_not_selected",
	})
	var stdout bytes.Buffer
	code, err := run(sub, sel, exp, filepath.Join(dir, "out"), true, &stdout)
	if err != nil || code != 0 {
		t.Fatalf("update: code %d, err %v", code, err)
	}
	want := []string{"tempest.api.network.test_a.A.test_pass", "tempest.api.network.test_z.Z.test_not_selected"}
	if got := readLines(t, exp); !slices.Equal(got, want) {
		t.Errorf("expected file = %q, want %q", got, want)
	}
}

func TestRunWithoutExpectedFile(t *testing.T) {
	dir := t.TempDir()
	sub, sel, _ := writeRun(t, dir, nil)
	missing := filepath.Join(dir, "absent.txt")
	if _, err := run(sub, sel, missing, filepath.Join(dir, "out"), false, &bytes.Buffer{}); err == nil {
		t.Error("a missing expected file is no error when checking")
	}
	if _, err := run(sub, sel, missing, filepath.Join(dir, "out"), true, &bytes.Buffer{}); err != nil {
		t.Errorf("update with no expected file yet: %v", err)
	}
	if got := readLines(t, missing); !slices.Equal(got, []string{"tempest.api.network.test_a.A.test_pass"}) {
		t.Errorf("created expected file = %q", got)
	}
}
