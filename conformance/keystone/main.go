// Command keystone runs the private Keystone of a conformance run: it starts
// Keystone (SQLite, uwsgi; see internal/testenv), registers neutrino as the
// catalog's "network" service, writes the cloud's coordinates to an env file
// that conformance/run.sh sources, and keeps Keystone up until it receives
// SIGTERM or SIGINT.
//
//	keystone -dir RUN_DIR -network-url http://127.0.0.1:PORT -env RUN_DIR/keystone.env
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/testenv"
)

// region is the catalog region bootstrap creates, where the endpoints go.
const region = "RegionOne"

func main() {
	dir := flag.String("dir", "", "directory for Keystone's state (Keystone uses DIR/keystone, which must not exist)")
	networkURL := flag.String("network-url", "", "URL of neutrino's API, registered as the network service's endpoints")
	envFile := flag.String("env", "", "file to write KEYSTONE_URL and the admin credentials to, once Keystone is ready")
	flag.Parse()
	if *dir == "" || *networkURL == "" || *envFile == "" {
		fmt.Fprintln(os.Stderr, "usage: keystone -dir DIR -network-url URL -env FILE")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *networkURL, *envFile); err != nil {
		fmt.Fprintln(os.Stderr, "keystone:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, networkURL, envFile string) error {
	began := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ks, err := testenv.StartKeystoneServer(startCtx, dir)
	if err != nil {
		return fmt.Errorf("start Keystone: %w", err)
	}
	defer ks.Stop()

	if err := registerNetworkService(startCtx, ks, networkURL); err != nil {
		return err
	}
	env := fmt.Sprintf("KEYSTONE_URL=%s\nKEYSTONE_PID=%d\nADMIN_USER=%s\nADMIN_PASSWORD=%s\nADMIN_PROJECT=%s\nADMIN_DOMAIN=Default\nREGION=%s\n",
		shellQuote(ks.URL), ks.PID(), shellQuote(ks.AdminUser), shellQuote(ks.AdminPassword),
		shellQuote(ks.AdminProject), region)
	if err := writeFileAtomic(envFile, []byte(env)); err != nil {
		return err
	}
	slog.InfoContext(ctx, "keystone ready", "url", ks.URL, "uwsgi_pid", ks.PID(),
		"network_endpoint", networkURL, "took", time.Since(began).Round(time.Millisecond))

	<-ctx.Done()
	slog.InfoContext(context.Background(), "keystone stopping", "url", ks.URL)
	return nil
}

// registerNetworkService creates the catalog's network service with a
// public, internal and admin endpoint at url in region.
func registerNetworkService(ctx context.Context, ks *testenv.Keystone, url string) error {
	token, err := ks.TokenContext(ctx, ks.AdminUser, ks.AdminPassword, ks.AdminProject)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	c := &identityClient{base: ks.URL, token: token, http: &http.Client{Timeout: 30 * time.Second}}
	var svc struct {
		Service struct {
			ID string `json:"id"`
		} `json:"service"`
	}
	if err := c.post(ctx, "/services", map[string]any{"service": map[string]any{
		"type": "network", "name": "neutrino", "enabled": true,
		"description": "neutrino: OpenStack Networking API v2.0",
	}}, &svc); err != nil {
		return fmt.Errorf("register network service: %w", err)
	}
	for _, iface := range []string{"public", "internal", "admin"} {
		if err := c.post(ctx, "/endpoints", map[string]any{"endpoint": map[string]any{
			"service_id": svc.Service.ID, "interface": iface, "url": url,
			"region_id": region, "enabled": true,
		}}, nil); err != nil {
			return fmt.Errorf("register %s network endpoint: %w", iface, err)
		}
	}
	return nil
}

// identityClient posts to Keystone's v3 API as the admin.
type identityClient struct {
	base, token string
	http        *http.Client
}

func (c *identityClient) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Auth-Token", c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("POST %s: read answer: %w", path, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("POST %s: decode answer: %w", path, err)
		}
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file, so that a
// reader polling for path never sees it half written.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".env-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
