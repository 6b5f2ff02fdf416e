// Package policy owns who may do what: Neutron's default policy expressed as
// Go values. Each resource has a rule per action (get, create, update,
// delete); rules combine the caller's roles with facts about the object
// (its owner, whether its network is shared with or external to the caller,
// who owns its network or parent). Objects a caller may not see are
// reported as missing (404), never as forbidden.
package policy

import (
	"github.com/neutrino-sdn/neutrino/internal/auth"
)

// Rule is one access rule.
type Rule int

const (
	// AdminOnly allows only administrators.
	AdminOnly Rule = iota
	// Anyone allows every authenticated caller.
	Anyone
	// Owner allows administrators and members of the owning project.
	Owner
	// OwnerOrShared also allows callers the object is shared with
	// (RBAC access_as_shared) or external to (access_as_external).
	OwnerOrShared
	// OwnerOrNetworkOwner also allows the owner of the object's network
	// (or parent object, such as a port's network or a rule's group).
	OwnerOrNetworkOwner
	// OwnerOrNetworkOwnerOrShared combines the two.
	OwnerOrNetworkOwnerOrShared
)

// Facts are what the rules need to know about an object beyond its owner.
type Facts struct {
	Owner        string // project_id of the object
	Shared       bool   // shared with the caller's project (or with everyone)
	External     bool   // an external network, or on one
	NetworkOwner string // owner of the object's network or parent object
}

// Spec holds the rules of one resource.
type Spec struct {
	Get, Create, Update, Delete Rule
}

// Default is Neutron's default policy by collection name.
var defaults = map[string]Spec{
	"networks":             {Get: OwnerOrShared, Create: Anyone, Update: Owner, Delete: Owner},
	"subnets":              {Get: OwnerOrNetworkOwnerOrShared, Create: OwnerOrNetworkOwner, Update: OwnerOrNetworkOwner, Delete: OwnerOrNetworkOwner},
	"ports":                {Get: OwnerOrNetworkOwner, Create: Anyone, Update: OwnerOrNetworkOwner, Delete: OwnerOrNetworkOwner},
	"routers":              {Get: Owner, Create: Anyone, Update: Owner, Delete: Owner},
	"floatingips":          {Get: Owner, Create: Anyone, Update: Owner, Delete: Owner},
	"security-groups":      {Get: Owner, Create: Anyone, Update: Owner, Delete: Owner},
	"security-group-rules": {Get: OwnerOrNetworkOwner, Create: Anyone, Update: Owner, Delete: OwnerOrNetworkOwner},
	"subnetpools":          {Get: OwnerOrShared, Create: Anyone, Update: Owner, Delete: Owner},
	"rbac-policies":        {Get: Owner, Create: Anyone, Update: Owner, Delete: Owner},
	"agents":               {Get: AdminOnly, Create: AdminOnly, Update: AdminOnly, Delete: AdminOnly},
}

// For returns the rules of a collection; unknown collections are admin-only.
func For(plural string) Spec {
	if s, ok := defaults[plural]; ok {
		return s
	}
	return Spec{}
}

// CanRead reports whether the caller holds a role that may read its own
// project's resources, as Neutron's project-reader rule requires: reader,
// member or admin. (Keystone's default roles imply reader for members and
// admins; a user with only some unrelated role reads nothing but what is
// shared with everyone.)
func CanRead(id *auth.Identity) bool {
	if id == nil {
		return false
	}
	return id.IsAdmin || id.NoAuth || id.HasRole(auth.RoleReader) || id.HasRole(auth.RoleMember)
}

// CanWrite reports whether the caller may change anything at all, as
// Neutron's project-member rule requires: admins and project members; a
// reader-only caller may not.
func CanWrite(id *auth.Identity) bool {
	if id == nil {
		return false
	}
	return id.IsAdmin || id.NoAuth || id.HasRole(auth.RoleMember)
}

// Allowed evaluates rule for caller against an object with facts f.
// writing says whether the action changes state (readers are refused).
func Allowed(rule Rule, id *auth.Identity, f Facts, writing bool) bool {
	if id == nil {
		return false
	}
	if id.IsAdmin {
		return true
	}
	if writing && !CanWrite(id) {
		return false
	}
	// Ownership counts only for callers with a role in their project;
	// sharing does not need one.
	inProject := CanRead(id) && id.ProjectID != ""
	owner := inProject && f.Owner == id.ProjectID
	netOwner := inProject && f.NetworkOwner == id.ProjectID
	switch rule {
	case Anyone:
		return true
	case Owner:
		return owner
	case OwnerOrShared:
		return owner || f.Shared || f.External
	case OwnerOrNetworkOwner:
		return owner || netOwner
	case OwnerOrNetworkOwnerOrShared:
		return owner || netOwner || f.Shared || f.External
	}
	return false
}
