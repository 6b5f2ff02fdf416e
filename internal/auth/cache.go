package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenKey is the cache key of a token: its SHA-256, so raw tokens are never
// kept in memory longer than one request.
type tokenKey [sha256.Size]byte

func keyOf(token string) tokenKey { return sha256.Sum256([]byte(token)) }

type cacheEntry struct {
	id      *Identity
	expires time.Time
}

// tokenCache holds validated identities until a deadline, with a bound on the
// number of entries. It is safe for concurrent use.
type tokenCache struct {
	max int

	mu      sync.Mutex
	entries map[tokenKey]cacheEntry
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[tokenKey]cacheEntry)}
}

// get returns a copy of the identity cached under k, if it has not expired.
func (c *tokenCache) get(k tokenKey, now time.Time) (*Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, k)
		return nil, false
	}
	return e.id.clone(), true
}

// put caches id under k until expires. When the cache is full, expired
// entries are dropped first, then arbitrary ones.
func (c *tokenCache) put(k tokenKey, id *Identity, expires, now time.Time) {
	if c.max <= 0 || !now.Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for ek, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, ek)
			}
		}
		// Still full: evict arbitrary entries (map order is unspecified)
		// down to 90% so the sweep above is not repeated on every insert.
		for ek := range c.entries {
			if len(c.entries) < c.max-c.max/10 {
				break
			}
			delete(c.entries, ek)
		}
	}
	c.entries[k] = cacheEntry{id: id.clone(), expires: expires}
}

// len returns the number of entries, expired or not.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
