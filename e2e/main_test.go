package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestMain builds the neutrino binary once for all tests, unless NEUTRINO_BIN
// already names one.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv(BinEnv) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "neutrino-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := Build(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv(BinEnv, bin)
	return m.Run()
}
