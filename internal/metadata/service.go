package metadata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Service is the built-in metadata service (what nova_metadata_url points
// at by default). It trusts a request only when X-Instance-ID-Signature
// is X-Instance-ID signed with the shared secret.
type Service struct {
	reg    *Registry
	secret string
	log    *slog.Logger
}

// NewService makes the metadata service.
func NewService(reg *Registry, secret string, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{reg: reg, secret: secret, log: log.With("component", "metadata")}
}

// Serve answers on addr until ctx ends.
func (s *Service) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metadata: listen on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	s.log.Info("metadata service listening", "addr", ln.Addr().String())
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metadata: serve: %w", err)
	}
	return nil
}

// instanceView is what one request may see: its instance and the port it
// asked from.
type instanceView struct {
	Instance
	local    string // the port's address the request came from
	floating string
	port     resource.Object
	network  resource.Object
	subnets  []resource.Object
}

// ServeHTTP checks the signature and answers the path.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	id := r.Header.Get(HeaderInstanceID)
	if !Verify(s.secret, id, r.Header.Get(HeaderSignature)) {
		s.log.Warn("metadata request with a bad or missing signature", "instance", id, "from", r.Header.Get(HeaderForwardedFor))
		http.Error(w, "403 Forbidden: invalid instance id signature", http.StatusForbidden)
		return
	}
	v, err := s.view(r.Context(), id, r.Header.Get(HeaderForwardedFor))
	if err != nil {
		if fe, ok := errors.AsType[*fault.Error](err); ok && fe.Status == http.StatusNotFound {
			http.Error(w, "404 Not Found: instance not registered", http.StatusNotFound)
			return
		}
		s.log.Error("metadata request failed", "instance", id, "err", err)
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	body, ctype, ok := v.answer(strings.TrimPrefix(r.URL.Path, "/"))
	if !ok {
		http.Error(w, "404 Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", ctype)
	_, _ = w.Write(body)
}

// view loads the instance and the port that sent the request.
func (s *Service) view(ctx context.Context, id, forwardedFor string) (*instanceView, error) {
	in, err := s.reg.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &instanceView{Instance: in}
	from, _ := netip.ParseAddr(strings.TrimSpace(strings.Split(forwardedFor, ",")[0]))
	reg := s.reg.svc.Registry()
	err = s.reg.svc.DB().View(ctx, func(tx *store.Tx) error {
		ports, err := tx.List(ctx, reg.ByPlural("ports"), store.Where{"device_id": {id}})
		if err != nil {
			return err
		}
		for _, p := range ports {
			for _, ip := range fixedIPs(p) {
				a, err := netip.ParseAddr(ip)
				if err != nil || !a.Is4() {
					continue
				}
				if v.port == nil || a == from {
					v.port, v.local = p, ip
				}
			}
		}
		if v.port == nil {
			return nil
		}
		if v.ProjectID == "" {
			// Registered without one: the project that owns its port.
			v.ProjectID = str(v.port["project_id"])
		}
		if v.network, err = tx.Get(ctx, reg.ByPlural("networks"), str(v.port["network_id"])); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if v.subnets, err = tx.List(ctx, reg.ByPlural("subnets"), store.Where{"network_id": {v.port["network_id"]}}); err != nil {
			return err
		}
		var fip sql.NullString
		err = tx.QueryRow(ctx, "SELECT floating_ip_address FROM floatingips WHERE port_id = ? AND fixed_ip_address = ?",
			str(v.port["id"]), v.local).Scan(&fip)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("metadata: floating IP of %s: %w", v.local, err)
		}
		v.floating = fip.String
		return nil
	})
	return v, err
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func fixedIPs(p resource.Object) []string {
	var out []string
	list, _ := p["fixed_ips"].([]any)
	for _, f := range list {
		if m, ok := f.(map[string]any); ok {
			out = append(out, str(m["ip_address"]))
		}
	}
	return out
}

const (
	textPlain = "text/plain; charset=utf-8"
	appJSON   = "application/json"
)

// answer is the body of path: the OpenStack format under openstack/, the
// EC2 format under a version (latest or a date). Any version is served as
// latest.
func (v *instanceView) answer(path string) ([]byte, string, bool) {
	parts := strings.Split(strings.TrimSuffix(path, "/"), "/")
	if path == "" {
		return []byte("latest\n"), textPlain, true
	}
	if parts[0] == "openstack" {
		if len(parts) == 1 {
			return []byte("latest\n"), textPlain, true
		}
		return v.openstack(parts[2:])
	}
	return v.ec2(parts[1:])
}

func (v *instanceView) openstack(rest []string) ([]byte, string, bool) {
	if len(rest) == 0 {
		return listing("meta_data.json", "network_data.json", "user_data"), textPlain, true
	}
	if len(rest) != 1 {
		return nil, "", false
	}
	switch rest[0] {
	case "meta_data.json":
		keys := []map[string]string{}
		for _, name := range v.keyNames() {
			keys = append(keys, map[string]string{"name": name, "type": "ssh", "data": v.PublicKeys[name]})
		}
		return mustJSON(map[string]any{
			"uuid": v.ID, "name": v.Name, "hostname": v.Name, "project_id": v.ProjectID,
			"public_keys": orEmpty(v.PublicKeys), "keys": keys,
			"availability_zone": "nova", "launch_index": 0, "meta": map[string]string{}, "devices": []any{},
		}), appJSON, true
	case "user_data":
		if v.UserData == "" {
			return nil, "", false
		}
		return []byte(v.UserData), "application/octet-stream", true
	case "network_data.json":
		return mustJSON(v.networkData()), appJSON, true
	}
	return nil, "", false
}

// networkData is network_data.json: the port as a link, its IPv4
// addresses as networks, the subnets' DNS servers as services.
func (v *instanceView) networkData() map[string]any {
	out := map[string]any{"links": []any{}, "networks": []any{}, "services": []any{}}
	if v.port == nil {
		return out
	}
	portID := str(v.port["id"])
	link := "tap" + portID[:min(11, len(portID))]
	l := map[string]any{"id": link, "vif_id": portID, "type": "ovs", "ethernet_mac_address": str(v.port["mac_address"])}
	if v.network != nil {
		if mtu, ok := v.network["mtu"].(int64); ok {
			l["mtu"] = mtu
		}
	}
	subnets := map[string]resource.Object{}
	for _, s := range v.subnets {
		subnets[str(s["id"])] = s
	}
	var nets, services []any
	seenDNS := map[string]bool{}
	list, _ := v.port["fixed_ips"].([]any)
	for i, f := range list {
		m, _ := f.(map[string]any)
		s := subnets[str(m["subnet_id"])]
		if s == nil || s["ip_version"] != int64(4) {
			continue
		}
		pfx, err := netip.ParsePrefix(str(s["cidr"]))
		if err != nil {
			continue
		}
		n := map[string]any{
			"id": fmt.Sprintf("network%d", i), "type": "ipv4", "link": link, "ip_address": str(m["ip_address"]),
			"netmask": net.IP(net.CIDRMask(pfx.Bits(), 32)).String(), "network_id": str(v.port["network_id"]),
			"routes": []any{},
		}
		if gw := str(s["gateway_ip"]); gw != "" {
			n["routes"] = []any{map[string]any{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": gw}}
		}
		nets = append(nets, n)
		dns, _ := s["dns_nameservers"].([]any)
		for _, d := range dns {
			if a := str(d); a != "" && !seenDNS[a] {
				seenDNS[a] = true
				services = append(services, map[string]any{"type": "dns", "address": a})
			}
		}
	}
	out["links"] = []any{l}
	if nets != nil {
		out["networks"] = nets
	}
	if services != nil {
		out["services"] = services
	}
	return out
}

func (v *instanceView) ec2(rest []string) ([]byte, string, bool) {
	if len(rest) == 0 {
		return listing("meta-data/", "user-data"), textPlain, true
	}
	switch rest[0] {
	case "user-data":
		if v.UserData == "" || len(rest) != 1 {
			return nil, "", false
		}
		return []byte(v.UserData), "application/octet-stream", true
	case "meta-data":
	default:
		return nil, "", false
	}
	md := map[string]string{
		"hostname": v.Name, "local-hostname": v.Name, "instance-id": v.ID,
		"local-ipv4": v.local, "public-ipv4": v.floating, "public-hostname": v.Name,
	}
	rest = rest[1:]
	if len(rest) == 0 {
		names := []string{"public-keys/"}
		for k, val := range md {
			if val != "" {
				names = append(names, k)
			}
		}
		return listing(names...), textPlain, true
	}
	if rest[0] == "public-keys" {
		return v.ec2Keys(rest[1:])
	}
	if len(rest) != 1 || md[rest[0]] == "" {
		return nil, "", false
	}
	return []byte(md[rest[0]]), textPlain, true
}

// ec2Keys serves public-keys/, public-keys/N/ and public-keys/N/openssh-key.
func (v *instanceView) ec2Keys(rest []string) ([]byte, string, bool) {
	names := v.keyNames()
	if len(rest) == 0 {
		var lines []string
		for i, n := range names {
			lines = append(lines, fmt.Sprintf("%d=%s", i, n))
		}
		return []byte(strings.Join(lines, "\n")), textPlain, true
	}
	var i int
	if _, err := fmt.Sscanf(rest[0], "%d", &i); err != nil || i < 0 || i >= len(names) || fmt.Sprint(i) != rest[0] {
		return nil, "", false
	}
	if len(rest) == 1 {
		return []byte("openssh-key"), textPlain, true
	}
	if len(rest) == 2 && rest[1] == "openssh-key" {
		return []byte(v.PublicKeys[names[i]]), textPlain, true
	}
	return nil, "", false
}

// keyNames are the key names in a stable order, "default" first.
func (v *instanceView) keyNames() []string {
	var names []string
	for k := range v.PublicKeys {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "default") != (names[j] == "default") {
			return names[i] == "default"
		}
		return names[i] < names[j]
	})
	return names
}

func listing(names ...string) []byte {
	sort.Strings(names)
	return []byte(strings.Join(names, "\n"))
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		// Only maps of strings and slices: cannot fail.
		panic(err)
	}
	return data
}

// Runner is a background loop of the server: it serves on addr until ctx
// ends. A failure to listen is logged, not fatal: the API works without
// the metadata service.
func (s *Service) Runner(addr string) func(context.Context) {
	return func(ctx context.Context) {
		if err := s.Serve(ctx, addr); err != nil {
			s.log.Error("the metadata service is not running", "err", err)
		}
	}
}
