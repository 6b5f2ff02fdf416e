package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// apiClient speaks the Networking API as the openstack CLI does in noauth
// mode: JSON bodies, X-Project-Id for the caller's project.
type apiClient struct {
	base    string
	project string
	http    *http.Client
}

func newAPIClient(base, project string) *apiClient {
	return &apiClient{base: strings.TrimSuffix(base, "/"), project: project, http: &http.Client{Timeout: 30 * time.Second}}
}

// APIError is an error answer of the API, in Neutron's format.
type APIError struct {
	Status  int
	Type    string
	Message string
}

func (e *APIError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Type)
	}
	return fmt.Sprintf("%s (%d)", e.Message, e.Status)
}

func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// do sends a request; in (if not nil) is the JSON body, out (if not nil)
// receives the decoded answer.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.project != "" {
		req.Header.Set("X-Project-Id", c.project)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("the Networking API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			NeutronError struct{ Type, Message string }
		}
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e) == nil && e.NeutronError.Message != "" {
			ae.Type, ae.Message = e.NeutronError.Type, e.NeutronError.Message
		} else {
			ae.Message = strings.TrimSpace(string(data))
		}
		return ae
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Network, Port and Agent hold the attributes this package reads.
type Network struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	MTU       int    `json:"mtu"`
	ProjectID string `json:"project_id"`
}

// FixedIP is one of a port's addresses.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

type port struct {
	ID         string    `json:"id"`
	NetworkID  string    `json:"network_id"`
	MACAddress string    `json:"mac_address"`
	FixedIPs   []FixedIP `json:"fixed_ips"`
	Status     string    `json:"status"`
	VIFType    string    `json:"binding:vif_type"`
	HostID     string    `json:"binding:host_id"`
}

type agentInfo struct {
	ID        string `json:"id"`
	AgentType string `json:"agent_type"`
	Host      string `json:"host"`
	Alive     bool   `json:"alive"`
}

// findOne resolves ref, an id or a name, in a collection as the openstack
// CLI does: an exact id first, then a unique name.
func findOne[T any](ctx context.Context, c *apiClient, plural, singular, ref string, id func(T) string) (T, error) {
	var zero T
	var byID map[string]T
	err := c.do(ctx, http.MethodGet, "/v2.0/"+plural+"/"+url.PathEscape(ref), nil, &byID)
	if err == nil {
		return byID[singular], nil
	}
	if !isNotFound(err) {
		return zero, err
	}
	var list map[string][]T
	if err := c.do(ctx, http.MethodGet, "/v2.0/"+plural+"?name="+url.QueryEscape(ref), nil, &list); err != nil {
		return zero, err
	}
	found := list[plural]
	switch len(found) {
	case 0:
		return zero, fmt.Errorf("no %s named or with id %q", strings.ReplaceAll(singular, "_", " "), ref)
	case 1:
		return found[0], nil
	}
	ids := make([]string, 0, len(found))
	for _, f := range found {
		ids = append(ids, id(f))
	}
	return zero, fmt.Errorf("more than one %s is named %q (%s): give its id", strings.ReplaceAll(singular, "_", " "), ref, strings.Join(ids, ", "))
}

func (c *apiClient) network(ctx context.Context, ref string) (Network, error) {
	return findOne(ctx, c, "networks", "network", ref, func(n Network) string { return n.ID })
}

type subnet struct {
	ID         string `json:"id"`
	IPVersion  int    `json:"ip_version"`
	EnableDHCP bool   `json:"enable_dhcp"`
}

func (c *apiClient) subnets(ctx context.Context, networkID string) ([]subnet, error) {
	var out struct{ Subnets []subnet }
	err := c.do(ctx, http.MethodGet, "/v2.0/subnets?network_id="+url.QueryEscape(networkID), nil, &out)
	return out.Subnets, err
}

func (c *apiClient) securityGroup(ctx context.Context, ref string) (string, error) {
	type group struct {
		ID string `json:"id"`
	}
	g, err := findOne(ctx, c, "security-groups", "security_group", ref, func(g group) string { return g.ID })
	return g.ID, err
}

func (c *apiClient) createPort(ctx context.Context, body map[string]any) (port, error) {
	var out struct{ Port port }
	err := c.do(ctx, http.MethodPost, "/v2.0/ports", map[string]any{"port": body}, &out)
	return out.Port, err
}

func (c *apiClient) port(ctx context.Context, id string) (port, error) {
	var out struct{ Port port }
	err := c.do(ctx, http.MethodGet, "/v2.0/ports/"+url.PathEscape(id), nil, &out)
	return out.Port, err
}

// deletePort deletes the port; a port already gone is not an error.
func (c *apiClient) deletePort(ctx context.Context, id string) error {
	err := c.do(ctx, http.MethodDelete, "/v2.0/ports/"+url.PathEscape(id), nil, nil)
	if isNotFound(err) {
		return nil
	}
	return err
}

// aliveL2Agent reports whether an alive Open vSwitch agent serves host.
func (c *apiClient) aliveL2Agent(ctx context.Context, host string) (bool, error) {
	var out struct{ Agents []agentInfo }
	q := url.Values{"host": {host}, "agent_type": {msg.AgentTypeOVS}}
	if err := c.do(ctx, http.MethodGet, "/v2.0/agents?"+q.Encode(), nil, &out); err != nil {
		return false, err
	}
	for _, a := range out.Agents {
		if a.Alive {
			return true, nil
		}
	}
	return false, nil
}

// registerInstance stores the VM's name, key and user data with the
// server's built-in metadata service, keyed by its instance id.
func (c *apiClient) registerInstance(ctx context.Context, id string, body map[string]any) error {
	return c.do(ctx, http.MethodPut, "/v2.0/instance-metadata/"+url.PathEscape(id), map[string]any{"instance_metadata": body}, nil)
}

// unregisterInstance removes the VM's metadata; one already gone is not
// an error.
func (c *apiClient) unregisterInstance(ctx context.Context, id string) error {
	err := c.do(ctx, http.MethodDelete, "/v2.0/instance-metadata/"+url.PathEscape(id), nil, nil)
	if isNotFound(err) {
		return nil
	}
	return err
}
