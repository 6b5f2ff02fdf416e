// Package metadata owns the metadata role of the agent, Neutron's
// metadata agent and ns-metadata-proxy in one process: a listener for
// 169.254.169.254:80 in every router namespace this host serves (and,
// with enable_isolated_metadata, in the DHCP namespace of each network
// without a router), opened inside the namespace by a goroutine and served
// from this process (no process per namespace). A namespace listener
// stamps the guest's address and its router or network on the request,
// replacing whatever the guest sent, and forwards it over a unix socket to
// the metadata agent; the agent asks the server which instance holds that
// address there, signs the instance id with the shared secret and
// forwards the request to nova_metadata_url.
package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	md "github.com/neutrino-sdn/neutrino/internal/metadata"
)

// guestHeaders are the headers only the proxies may set: whatever a guest
// sends in them is dropped before they are set.
var guestHeaders = []string{
	md.HeaderForwardedFor, md.HeaderRouterID, md.HeaderNetworkID,
	md.HeaderInstanceID, md.HeaderTenantID, md.HeaderSignature,
	"X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded",
}

// Scope is where a namespace listener serves: a router or a network.
type Scope struct {
	RouterID, NetworkID string
}

// NamespaceProxy is the handler of a namespace listener: it forwards the
// guest's request to the metadata agent's unix socket with X-Forwarded-For
// set to the guest's source address and X-Neutron-Router-ID or
// X-Neutron-Network-ID set to its scope.
func NamespaceProxy(scope Scope, socket string, log *slog.Logger) http.Handler {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 16, IdleConnTimeout: 30 * time.Second,
	}
	return &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "metadata-agent"
			pr.Out.Host = pr.In.Host
			for _, h := range guestHeaders {
				pr.Out.Header.Del(h)
			}
			if host, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
				pr.Out.Header.Set(md.HeaderForwardedFor, host)
			}
			if scope.RouterID != "" {
				pr.Out.Header.Set(md.HeaderRouterID, scope.RouterID)
			} else {
				pr.Out.Header.Set(md.HeaderNetworkID, scope.NetworkID)
			}
		},
		ErrorHandler: proxyError(log, "the metadata agent"),
	}
}

// LookupFunc asks the server which instance sent a request.
type LookupFunc func(ctx context.Context, q msg.MetadataLookup) (msg.MetadataLookupReply, error)

// AgentProxy is the metadata agent's handler on the unix socket: it
// resolves the instance from X-Forwarded-For and the router or network
// header (set by a namespace listener), signs its id and forwards the
// request to the metadata service at target.
func AgentProxy(target *url.URL, secret string, lookup LookupFunc, log *slog.Logger) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			inst := pr.In.Context().Value(instanceKey{}).(msg.MetadataLookupReply)
			forwardedFor := pr.In.Header.Get(md.HeaderForwardedFor)
			pr.SetURL(target)
			pr.Out.Host = target.Host
			for _, h := range guestHeaders {
				pr.Out.Header.Del(h)
			}
			pr.Out.Header.Set(md.HeaderForwardedFor, forwardedFor)
			pr.Out.Header.Set(md.HeaderInstanceID, inst.InstanceID)
			pr.Out.Header.Set(md.HeaderTenantID, inst.ProjectID)
			pr.Out.Header.Set(md.HeaderSignature, md.Sign(secret, inst.InstanceID))
		},
		ErrorHandler: proxyError(log, "the metadata service"),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := msg.MetadataLookup{
			Version: msg.Version, IP: r.Header.Get(md.HeaderForwardedFor),
			RouterID: r.Header.Get(md.HeaderRouterID), NetworkID: r.Header.Get(md.HeaderNetworkID),
		}
		if q.RouterID != "" {
			q.NetworkID = ""
		}
		if q.IP == "" || (q.RouterID == "" && q.NetworkID == "") {
			http.Error(w, "400 Bad Request: no X-Forwarded-For or router/network", http.StatusBadRequest)
			return
		}
		inst, err := lookup(r.Context(), q)
		if err != nil {
			log.Warn("metadata: instance lookup failed", "ip", q.IP, "router", q.RouterID, "network", q.NetworkID, "err", err)
			http.Error(w, "500 Internal Server Error: instance lookup failed", http.StatusInternalServerError)
			return
		}
		if !inst.Found {
			http.Error(w, "404 Not Found: no instance with this address", http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), instanceKey{}, inst)))
	})
}

type instanceKey struct{}

func proxyError(log *slog.Logger, what string) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, context.Canceled) {
			return
		}
		log.Warn("metadata: proxying failed", "to", what, "path", r.URL.Path, "err", err)
		http.Error(w, fmt.Sprintf("502 Bad Gateway: %s does not answer", what), http.StatusBadGateway)
	}
}
