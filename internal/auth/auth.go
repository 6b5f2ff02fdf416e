// Package auth establishes who is calling the API.
//
// Two modes exist, matching Neutron's auth_strategy: noauth, where every
// caller is an administrator and the project comes from the request, and
// keystone, where the X-Auth-Token header is validated against a Keystone v3
// identity service and the caller's user, project and roles come from the
// token. Both are Authenticators; the API calls Authenticate once per request
// and maps ErrUnauthorized to 401. Policy decisions (what an Identity may do)
// are made elsewhere; this package only says who the caller is.
package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
)

// ErrUnauthorized is returned (wrapped) when a request carries no token, or a
// token that is invalid or expired. The API maps it to 401. Any other error
// from Authenticate means authentication could not be decided (for example
// Keystone is unreachable) and is a server-side failure.
var ErrUnauthorized = errors.New("authentication required")

// Role names with a meaning in Neutron's default policy.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleReader = "reader"
)

// Identity is the authenticated caller of one request.
type Identity struct {
	UserID, UserName       string
	ProjectID, ProjectName string
	// DomainID is the domain of the token's scope: the project's domain for
	// a project-scoped token, the domain itself for a domain-scoped token,
	// otherwise the user's domain.
	DomainID string
	Roles    []string
	IsAdmin  bool // has the admin role
	NoAuth   bool // set in noauth mode
}

// HasRole reports whether the caller holds role. Role names compare
// case-insensitively, as oslo.policy's role checks do.
func (i *Identity) HasRole(role string) bool {
	if i == nil {
		return false
	}
	return slices.ContainsFunc(i.Roles, func(r string) bool { return strings.EqualFold(r, role) })
}

// clone returns a deep copy, so cached identities are never shared with
// callers that might modify them.
func (i *Identity) clone() *Identity {
	c := *i
	c.Roles = slices.Clone(i.Roles)
	return &c
}

// Authenticator decides who made a request.
type Authenticator interface {
	// Authenticate returns the caller of r, or an error wrapping
	// ErrUnauthorized when r carries no valid credentials.
	Authenticate(ctx context.Context, r *http.Request) (*Identity, error)
}

type contextKey struct{}

// NewContext returns a copy of ctx carrying id.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the Identity stored by NewContext, if any.
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(contextKey{}).(*Identity)
	return id, ok && id != nil
}
