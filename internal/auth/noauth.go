package auth

import (
	"context"
	"net/http"
	"strings"
)

// Headers read in noauth mode, as Neutron's noauth pipeline reads them.
const (
	HeaderProjectID = "X-Project-Id"
	HeaderTenantID  = "X-Tenant-Id"
	HeaderUserID    = "X-User-Id"
)

type noAuth struct{}

// NewNoAuth returns the Authenticator of noauth mode: every caller is an
// administrator. The project is taken from the X-Project-Id header (or the
// older X-Tenant-Id) and may be empty; the user from X-User-Id, if present.
func NewNoAuth() Authenticator { return noAuth{} }

func (noAuth) Authenticate(_ context.Context, r *http.Request) (*Identity, error) {
	project := strings.TrimSpace(r.Header.Get(HeaderProjectID))
	if project == "" {
		project = strings.TrimSpace(r.Header.Get(HeaderTenantID))
	}
	return &Identity{
		UserID:    strings.TrimSpace(r.Header.Get(HeaderUserID)),
		ProjectID: project,
		Roles:     []string{RoleAdmin, RoleMember, RoleReader},
		IsAdmin:   true,
		NoAuth:    true,
	}, nil
}
