package testenv

import (
	"bufio"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Sample is one line of a Prometheus text exposition.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics are the samples of one scrape.
type Metrics []Sample

// labelPair matches name="value" in a sample's label set (values with
// escaped quotes are not needed by the tests).
var labelPair = regexp.MustCompile(`(\w+)="([^"]*)"`)

// Scrape gets url (a /metrics endpoint) over HTTP and parses the samples,
// failing t if the endpoint does not answer 200.
func Scrape(t testing.TB, url string) Metrics {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, body)
	}
	var out Metrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := cutLast(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		s := Sample{Name: series, Labels: map[string]string{}, Value: v}
		if name, labels, ok := strings.Cut(series, "{"); ok {
			s.Name = name
			for _, m := range labelPair.FindAllStringSubmatch(labels, -1) {
				s.Labels[m[1]] = m[2]
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return out
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// Sum adds the values of the samples named name whose labels include
// every pair of labels; found says whether any matched.
func (m Metrics) Sum(name string, labels map[string]string) (sum float64, found bool) {
	for _, s := range m {
		if s.Name != name || !hasLabels(s.Labels, labels) {
			continue
		}
		sum += s.Value
		found = true
	}
	return sum, found
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
