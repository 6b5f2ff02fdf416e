package scheduler_test

import (
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

// TestMain lets the tests share one PostgreSQL server when they run on it
// (NEUTRINO_TEST_DB=postgres).
func TestMain(m *testing.M) { apitest.Main(m) }
