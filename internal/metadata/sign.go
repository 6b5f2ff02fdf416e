// Package metadata owns neutrino's built-in instance metadata service, as
// Nova's metadata API serves it behind Neutron's metadata agent: the
// registry of instances neutrino itself runs (`neutrino vm`, keyed by
// their ports' device_id), the server's lookup of the port behind a
// metadata request, the HMAC signature of instance ids shared with the
// metadata agent, and the HTTP service answering the OpenStack and EC2
// formats to requests that carry a valid signature.
package metadata

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Headers the metadata agent sets on requests it forwards, as Neutron's
// metadata agent does.
const (
	HeaderForwardedFor = "X-Forwarded-For"
	HeaderRouterID     = "X-Neutron-Router-ID"
	HeaderNetworkID    = "X-Neutron-Network-ID"
	HeaderInstanceID   = "X-Instance-ID"
	HeaderTenantID     = "X-Tenant-ID"
	HeaderSignature    = "X-Instance-ID-Signature"
)

// Sign is the signature of instanceID with the shared secret: the
// hex-encoded HMAC-SHA256, as Nova expects in X-Instance-ID-Signature.
func Sign(secret, instanceID string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(instanceID))
	return hex.EncodeToString(m.Sum(nil))
}

// Verify tells whether signature is instanceID's, in constant time.
func Verify(secret, instanceID, signature string) bool {
	if instanceID == "" || signature == "" {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, instanceID)), []byte(signature))
}
