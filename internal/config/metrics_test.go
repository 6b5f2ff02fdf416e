package config_test

import (
	"strings"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/config"
)

// TestMetricsListen: agent.metrics_listen is host:port or empty (off); a
// bad value names the option.
func TestMetricsListen(t *testing.T) {
	for _, addr := range []string{"", "127.0.0.1:9698", "0.0.0.0:9698", "[::1]:9698", ":9698"} {
		a := config.Default().Agent
		a.MetricsListen = addr
		if err := a.Validate(); err != nil {
			t.Errorf("metrics_listen %q: %v", addr, err)
		}
	}
	for _, addr := range []string{"9698", "127.0.0.1", "127.0.0.1:"} {
		a := config.Default().Agent
		a.MetricsListen = addr
		if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "agent.metrics_listen") {
			t.Errorf("metrics_listen %q: %v, want an error naming agent.metrics_listen", addr, err)
		}
	}
}
