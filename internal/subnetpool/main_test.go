package subnetpool_test

import (
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

// TestMain shares one PostgreSQL server across the package's tests when
// NEUTRINO_TEST_DB=postgres.
func TestMain(m *testing.M) { apitest.Main(m) }
