package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthAndMetrics(t *testing.T) {
	srv := apitest.Start(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, srv.URL+p); code != 200 || !strings.HasPrefix(body, "ok") {
			t.Errorf("%s: %d %q", p, code, body)
		}
	}
	srv.Client(t, "p1").Must(http.StatusOK, "GET", "/v2.0/networks", nil)
	code, body := get(t, srv.URL+"/metrics")
	if code != 200 || !strings.Contains(body, `neutrino_api_request_duration_seconds_count{code="200",resource="networks",verb="GET"} 1`) {
		t.Fatalf("metrics missing the API request series: %d\n%s", code, body)
	}
}

func TestVersionDiscovery(t *testing.T) {
	srv := apitest.Start(t)
	code, body := get(t, srv.URL+"/")
	if code != 200 || !strings.Contains(body, `"id":"v2.0"`) || !strings.Contains(body, srv.URL+"/v2.0/") {
		t.Fatalf("GET /: %d %s", code, body)
	}
	c := srv.Client(t, "p1")
	r := c.Do("GET", "/v2.0/extensions", nil)
	if r.Status != 200 || len(r.Items("extensions")) < 20 {
		t.Fatalf("extensions: %d %s", r.Status, r.Raw)
	}
	if r := c.Do("GET", "/v2.0/extensions/router", nil); r.Status != 200 || r.Item("extension")["alias"] != "router" {
		t.Fatalf("extension router: %d %s", r.Status, r.Raw)
	}
	if r := c.Do("GET", "/v2.0/extensions/dvr", nil); r.Status != 404 {
		t.Fatalf("unlisted extension: %d %s", r.Status, r.Raw)
	}
	if r := c.Do("GET", "/v2.0/bogus", nil); r.Status != 404 || r.ErrorType() == "" {
		t.Fatalf("unknown collection: %d %s", r.Status, r.Raw)
	}
}
