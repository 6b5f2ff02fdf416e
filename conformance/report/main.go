// Command report turns the results of a conformance run (Tempest's subunit
// stream as stestr stored it, and the list of tests selected) into the
// per-suite counts of passed, failed and skipped tests, lists of test ids
// with the reasons of failures and skips, and the verdict of the run: it
// exits 1 when a test listed in the expected-pass file did not pass.
//
//	report -subunit last.subunit -selected selected-tests.txt \
//	       -expected conformance/expected-pass.txt -out RUN_DIR/results [-update-expected]
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Suites are the test packages a conformance run reports on, in order.
var suitePrefixes = []string{"tempest.api.network.", "neutron_tempest_plugin.api."}

// Outcomes of one selected test.
const (
	passed  = "passed"
	failed  = "failed"
	skipped = "skipped"
	notRun  = "not run" // selected, but no result at all: the run was cut short
)

// result is what the subunit stream says of one test id (or class fixture).
type result struct {
	status    string // last terminal status: success, fail, skip, xfail, uxsuccess
	reason    []byte // skip reason
	traceback []byte
}

// outcome is the verdict on one selected test.
type outcome struct {
	id, suite, outcome, detail string
}

// Report is a whole run's verdict.
type Report struct {
	Selected    int
	Outcomes    []outcome // one per selected test, in id order
	ClassErrors []outcome // fixture failures not tied to one test (tearDownClass, ...)
	Regressions []string  // expected to pass, did not
	NewPasses   []string  // passed, not yet expected
	Unselected  int       // expected ids outside this run's selection
}

func main() {
	subunitPath := flag.String("subunit", "", "subunit v2 stream of the run (stestr last --subunit)")
	selectedPath := flag.String("selected", "", "tests selected for the run, one id per line (tempest run --list-tests)")
	expectedPath := flag.String("expected", "", "test ids expected to pass; the run fails when one of them does not")
	outDir := flag.String("out", "", "directory for summary.txt, passed.txt, failed.txt, failures.txt, skipped.txt")
	update := flag.Bool("update-expected", false, "rewrite the expected file: ids outside this selection are kept, the rest become this run's passes")
	flag.Parse()
	if *subunitPath == "" || *selectedPath == "" || *outDir == "" {
		fmt.Fprintln(os.Stderr, "usage: report -subunit FILE -selected FILE -out DIR [-expected FILE [-update-expected]]")
		os.Exit(2)
	}
	code, err := run(*subunitPath, *selectedPath, *expectedPath, *outDir, *update, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(subunitPath, selectedPath, expectedPath, outDir string, update bool, stdout io.Writer) (int, error) {
	results, err := readResults(subunitPath)
	if err != nil {
		return 0, err
	}
	selected, err := readIDs(selectedPath)
	if err != nil {
		return 0, err
	}
	var expected []string
	if expectedPath != "" {
		if expected, err = readIDs(expectedPath); err != nil && !(update && errors.Is(err, os.ErrNotExist)) {
			return 0, err
		}
	}
	rep := build(results, selected, expected)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, fmt.Errorf("create %s: %w", outDir, err)
	}
	var summary bytes.Buffer
	rep.writeSummary(&summary, update)
	if err := rep.writeFiles(outDir, summary.Bytes()); err != nil {
		return 0, err
	}
	if _, err := stdout.Write(summary.Bytes()); err != nil {
		return 0, err
	}
	if update {
		if err := writeExpected(expectedPath, rep.updatedExpected(expected, selected)); err != nil {
			return 0, err
		}
		return 0, nil
	}
	if len(rep.Regressions) > 0 {
		return 1, nil
	}
	return 0, nil
}

// readResults reads the subunit stream into the terminal result of each id,
// tags stripped.
func readResults(path string) (map[string]*result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	results := map[string]*result{}
	err = ReadSubunit(f, func(ev Event) error {
		if ev.TestID == "" {
			return nil
		}
		id := baseID(ev.TestID)
		r := results[id]
		if r == nil {
			r = &result{}
			results[id] = r
		}
		switch ev.Status {
		case "success", "fail", "skip", "xfail", "uxsuccess":
			r.status = ev.Status
		}
		switch ev.FileName {
		case "reason":
			r.reason = append(r.reason, ev.FileBytes...)
		case "traceback":
			r.traceback = append(r.traceback, ev.FileBytes...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return results, nil
}

// readIDs reads one test id a line, tags stripped; blank lines and lines
// starting with # are skipped.
func readIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ids = append(ids, baseID(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// baseID strips the "[id-…,smoke]" tags Tempest appends to test ids; a
// scenario's name after them, "…[id-…](ingress)", stays.
func baseID(id string) string {
	id = strings.TrimSpace(id)
	before, tags, ok := strings.Cut(id, "[")
	if !ok {
		return id
	}
	_, after, _ := strings.Cut(tags, "]")
	return before + after
}

// fixtureID splits a class fixture's id, "setUpClass (pkg.mod.Class)", into
// the fixture and the class.
func fixtureID(id string) (fixture, class string, ok bool) {
	fixture, rest, ok := strings.Cut(id, " (")
	if !ok || !strings.HasSuffix(rest, ")") {
		return "", "", false
	}
	return fixture, strings.TrimSuffix(rest, ")"), true
}

func suiteOf(id string) string {
	for _, p := range suitePrefixes {
		if strings.HasPrefix(id, p) {
			return strings.TrimSuffix(p, ".")
		}
	}
	return "other"
}

func build(results map[string]*result, selected, expected []string) *Report {
	rep := &Report{Selected: len(selected)}
	setUpClass := map[string]*result{}
	for id, r := range results {
		fixture, class, ok := fixtureID(id)
		if !ok {
			continue
		}
		if fixture == "setUpClass" {
			setUpClass[class] = r
		} else if r.status == "fail" || r.status == "uxsuccess" {
			rep.ClassErrors = append(rep.ClassErrors, outcome{id: id, suite: suiteOf(class), outcome: failed, detail: lastLines(r.traceback)})
		}
	}
	slices.SortFunc(rep.ClassErrors, func(a, b outcome) int { return strings.Compare(a.id, b.id) })

	byID := map[string]string{}
	for _, id := range selected {
		o := outcome{id: id, suite: suiteOf(id), outcome: notRun}
		class := id[:max(strings.LastIndex(id, "."), 0)]
		if r := results[id]; r != nil && r.status != "" {
			o.outcome, o.detail = judge(r, "")
		} else if r := setUpClass[class]; r != nil && r.status != "" && r.status != "success" {
			o.outcome, o.detail = judge(r, "setUpClass: ")
		}
		rep.Outcomes = append(rep.Outcomes, o)
		byID[id] = o.outcome
	}
	isExpected := map[string]bool{}
	for _, id := range expected {
		isExpected[id] = true
		out, ok := byID[id]
		switch {
		case !ok:
			rep.Unselected++
		case out != passed:
			rep.Regressions = append(rep.Regressions, id)
		}
	}
	for _, o := range rep.Outcomes {
		if o.outcome == passed && !isExpected[o.id] {
			rep.NewPasses = append(rep.NewPasses, o.id)
		}
	}
	return rep
}

// judge maps a subunit status to an outcome and its explanation.
func judge(r *result, prefix string) (string, string) {
	switch r.status {
	case "success", "xfail":
		return passed, ""
	case "skip":
		return skipped, prefix + oneLine(r.reason)
	default: // fail, uxsuccess
		return failed, prefix + lastLines(r.traceback)
	}
}

// lastLines condenses a traceback to its last lines, where Python puts the
// exception and Tempest the API's answer.
func lastLines(tb []byte) string {
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(tb)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > 4 {
		lines = lines[len(lines)-4:]
	}
	return truncate(strings.Join(lines, " | "), 700)
}

func oneLine(b []byte) string {
	return truncate(strings.Join(strings.Fields(string(b)), " "), 300)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// count returns the number of outcomes of each kind in suite ("" for all).
func (rep *Report) count(suite string) map[string]int {
	c := map[string]int{}
	for _, o := range rep.Outcomes {
		if suite == "" || o.suite == suite {
			c[o.outcome]++
		}
	}
	return c
}

func (rep *Report) suites() []string {
	var out []string
	for _, p := range suitePrefixes {
		out = append(out, strings.TrimSuffix(p, "."))
	}
	for _, o := range rep.Outcomes {
		if o.suite == "other" {
			return append(out, "other")
		}
	}
	return out
}

func (rep *Report) writeSummary(w io.Writer, update bool) {
	fmt.Fprintf(w, "%-28s %7s %7s %7s %7s\n", "suite", passed, failed, skipped, notRun)
	row := func(name string, c map[string]int) {
		fmt.Fprintf(w, "%-28s %7d %7d %7d %7d\n", name, c[passed], c[failed], c[skipped], c[notRun])
	}
	for _, s := range rep.suites() {
		row(s, rep.count(s))
	}
	row("total", rep.count(""))
	fmt.Fprintf(w, "(%d tests selected; a test of a class that was skipped or failed in setUpClass counts as skipped or failed)\n", rep.Selected)

	var failing []string
	for _, o := range rep.Outcomes {
		if o.outcome == failed {
			failing = append(failing, o.id)
		}
	}
	fmt.Fprintf(w, "\nfailing tests (%d):\n", len(failing))
	for _, id := range failing {
		fmt.Fprintf(w, "  %s\n", id)
	}
	if len(rep.ClassErrors) > 0 {
		fmt.Fprintf(w, "\nclass fixture errors (%d; not counted above):\n", len(rep.ClassErrors))
		for _, o := range rep.ClassErrors {
			fmt.Fprintf(w, "  %s\n", o.id)
		}
	}
	if c := rep.count("")[notRun]; c > 0 {
		fmt.Fprintf(w, "\n%d selected tests have no result: the run was cut short (see not-run.txt)\n", c)
	}

	fmt.Fprintln(w)
	switch {
	case update:
		fmt.Fprintf(w, "expected passes updated: %d tests of this selection passed\n", rep.count("")[passed])
	case len(rep.Regressions) > 0:
		fmt.Fprintf(w, "REGRESSIONS: %d tests in the expected-pass list did not pass:\n", len(rep.Regressions))
		for _, id := range rep.Regressions {
			fmt.Fprintf(w, "  %s\n", id)
		}
	default:
		fmt.Fprintln(w, "no regressions: every expected pass in this selection passed")
	}
	if !update && len(rep.NewPasses) > 0 {
		fmt.Fprintf(w, "%d tests passed that are not in the expected-pass list (UPDATE_EXPECTED=1 records them)\n", len(rep.NewPasses))
	}
	if rep.Unselected > 0 {
		fmt.Fprintf(w, "%d expected passes were outside this run's selection\n", rep.Unselected)
	}
}

func (rep *Report) writeFiles(dir string, summary []byte) error {
	files := map[string]*bytes.Buffer{}
	buf := func(name string) *bytes.Buffer {
		if files[name] == nil {
			files[name] = &bytes.Buffer{}
		}
		return files[name]
	}
	buf("summary.txt").Write(summary)
	for _, name := range []string{"passed.txt", "failed.txt", "failures.txt", "skipped.txt", "not-run.txt"} {
		buf(name)
	}
	for _, o := range rep.Outcomes {
		switch o.outcome {
		case passed:
			fmt.Fprintln(buf("passed.txt"), o.id)
		case failed:
			fmt.Fprintln(buf("failed.txt"), o.id)
			fmt.Fprintf(buf("failures.txt"), "%s\n    %s\n", o.id, o.detail)
		case skipped:
			fmt.Fprintf(buf("skipped.txt"), "%s : %s\n", o.id, o.detail)
		case notRun:
			fmt.Fprintln(buf("not-run.txt"), o.id)
		}
	}
	for _, o := range rep.ClassErrors {
		fmt.Fprintf(buf("failures.txt"), "%s\n    %s\n", o.id, o.detail)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// updatedExpected is the expected-pass list after this run: the ids outside
// its selection are kept, the others are replaced by this run's passes.
func (rep *Report) updatedExpected(expected, selected []string) []string {
	inSelection := map[string]bool{}
	for _, id := range selected {
		inSelection[id] = true
	}
	var out []string
	for _, id := range expected {
		if !inSelection[id] {
			out = append(out, id)
		}
	}
	for _, o := range rep.Outcomes {
		if o.outcome == passed {
			out = append(out, o.id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func writeExpected(path string, ids []string) error {
	if path == "" {
		return errors.New("-update-expected needs -expected")
	}
	var b bytes.Buffer
	b.WriteString("# Tempest tests neutrino passes (conformance/run.sh): a run fails when one\n")
	b.WriteString("# of them does not pass. Regenerate with UPDATE_EXPECTED=1 make conformance.\n")
	for _, id := range ids {
		b.WriteString(id + "\n")
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
