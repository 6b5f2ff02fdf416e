package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Keystone v3 headers.
const (
	HeaderAuthToken    = "X-Auth-Token"
	HeaderSubjectToken = "X-Subject-Token"
)

// Defaults of KeystoneConfig.
const (
	DefaultCacheTTL  = 5 * time.Minute
	DefaultCacheSize = 10000
	DefaultDomain    = "Default"
)

// maxBody bounds what is read from one Keystone response.
const maxBody = 1 << 20

// KeystoneConfig configures keystone mode.
type KeystoneConfig struct {
	// URL is Keystone's v3 endpoint, e.g. http://127.0.0.1:5000/v3. A URL
	// without a path gets /v3 appended.
	URL string
	// CacheTTL is how long a validated token is trusted without asking
	// Keystone again (default 5m); never beyond the token's expires_at.
	// A token revoked in Keystone is thus still accepted for up to
	// CacheTTL, as with keystonemiddleware's token_cache_time. Failed
	// validations are not cached. A negative value disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached tokens (default 10000).
	CacheSize int
	// HTTPClient talks to Keystone (default: a client with a 30s timeout).
	HTTPClient *http.Client

	// Optional service credentials. When Username is set, tokens are
	// validated with a project-scoped token of this user (it needs the
	// admin or service role); otherwise each token validates itself, which
	// Keystone's default policy allows.
	Username, Password string
	ProjectName        string
	UserDomainName     string // default "Default"
	ProjectDomainName  string // default "Default"
}

type keystoneAuth struct {
	base   string // without trailing slash
	ttl    time.Duration
	client *http.Client
	log    *slog.Logger
	cache  *tokenCache
	now    func() time.Time
	svc    *serviceAuth // nil without service credentials

	flightMu sync.Mutex
	flights  map[tokenKey]*flight
}

// flight is one validation in progress; concurrent requests with the same
// token wait for it instead of asking Keystone again.
type flight struct {
	done chan struct{}
	id   *Identity
	err  error
}

// NewKeystone returns the Authenticator of keystone mode: it validates the
// X-Auth-Token header with GET {URL}/auth/tokens and caches the result.
func NewKeystone(cfg KeystoneConfig, logger *slog.Logger) (Authenticator, error) {
	return newKeystone(cfg, logger)
}

func newKeystone(cfg KeystoneConfig, logger *slog.Logger) (*keystoneAuth, error) {
	base, err := normalizeURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	k := &keystoneAuth{
		base:    base,
		ttl:     cfg.CacheTTL,
		client:  cfg.HTTPClient,
		log:     logger.With("component", "auth.keystone"),
		now:     time.Now,
		flights: make(map[tokenKey]*flight),
	}
	if k.ttl == 0 {
		k.ttl = DefaultCacheTTL
	}
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if k.ttl < 0 {
		size = 0
	}
	k.cache = newTokenCache(size)
	if k.client == nil {
		k.client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Username != "" {
		if cfg.Password == "" || cfg.ProjectName == "" {
			return nil, errors.New("keystone: service credentials need username, password and project name")
		}
		k.svc = &serviceAuth{
			user:          cfg.Username,
			password:      cfg.Password,
			project:       cfg.ProjectName,
			userDomain:    cmpOr(cfg.UserDomainName, DefaultDomain),
			projectDomain: cmpOr(cfg.ProjectDomainName, DefaultDomain),
		}
	}
	return k, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func normalizeURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("keystone: URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("keystone: parse URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("keystone: URL %q is not an http(s) URL", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if u.Path == "" {
		u.Path = "/v3"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// Authenticate validates the request's X-Auth-Token.
func (k *keystoneAuth) Authenticate(ctx context.Context, r *http.Request) (*Identity, error) {
	token := strings.TrimSpace(r.Header.Get(HeaderAuthToken))
	if token == "" {
		return nil, fmt.Errorf("%w: no %s header", ErrUnauthorized, HeaderAuthToken)
	}
	key := keyOf(token)
	if id, ok := k.cache.get(key, k.now()); ok {
		return id, nil
	}

	k.flightMu.Lock()
	if f, ok := k.flights[key]; ok {
		k.flightMu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("keystone: wait for token validation: %w", ctx.Err())
		}
		// The leader's own context may have ended its call; ours is alive.
		if f.err != nil && isContextErr(f.err) && ctx.Err() == nil {
			id, _, err := k.validate(ctx, token)
			return id, err
		}
		if f.err != nil {
			return nil, f.err
		}
		return f.id.clone(), nil
	}
	f := &flight{done: make(chan struct{})}
	k.flights[key] = f
	k.flightMu.Unlock()

	id, expires, err := k.validate(ctx, token)
	if err == nil {
		until := k.now().Add(k.ttl)
		if expires.Before(until) {
			until = expires
		}
		k.cache.put(key, id, until, k.now())
	}
	f.id, f.err = id, err

	k.flightMu.Lock()
	delete(k.flights, key)
	k.flightMu.Unlock()
	close(f.done)

	if err != nil {
		return nil, err
	}
	return id.clone(), nil
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// validate asks Keystone about token and returns the caller and the token's
// expiry.
func (k *keystoneAuth) validate(ctx context.Context, token string) (*Identity, time.Time, error) {
	for attempt := 0; ; attempt++ {
		authToken := token
		if k.svc != nil {
			var err error
			if authToken, err = k.svc.token(ctx, k); err != nil {
				return nil, time.Time{}, err
			}
		}
		status, body, err := k.do(ctx, http.MethodGet, "/auth/tokens?nocatalog", map[string]string{
			HeaderAuthToken:    authToken,
			HeaderSubjectToken: token,
		}, nil)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("keystone: validate token: %w", err)
		}
		switch {
		case status == http.StatusOK:
			id, expires, err := k.parseValidation(body)
			if err == nil {
				k.log.DebugContext(ctx, "validated token", "user", id.UserName, "user_id", id.UserID,
					"project_id", id.ProjectID, "roles", id.Roles, "expires_at", expires)
			}
			return id, expires, err
		case status == http.StatusNotFound:
			return nil, time.Time{}, fmt.Errorf("%w: token is invalid or expired", ErrUnauthorized)
		case status == http.StatusUnauthorized && k.svc == nil:
			return nil, time.Time{}, fmt.Errorf("%w: token is invalid or expired", ErrUnauthorized)
		case status == http.StatusUnauthorized && attempt == 0:
			// Our service token was revoked or expired early: get a new one.
			k.log.InfoContext(ctx, "keystone rejected the service token; renewing it")
			k.svc.invalidate(authToken)
			continue
		case status == http.StatusUnauthorized:
			return nil, time.Time{}, fmt.Errorf("keystone: service token for %q rejected: %s", k.svc.user, errorText(status, body))
		case status == http.StatusForbidden && k.svc != nil:
			return nil, time.Time{}, fmt.Errorf("keystone: service user %q may not validate tokens (needs the admin or service role): %s",
				k.svc.user, errorText(status, body))
		case status == http.StatusForbidden:
			k.log.WarnContext(ctx, "keystone refused to let a token validate itself", "status", status)
			return nil, time.Time{}, fmt.Errorf("%w: keystone refused to validate the token", ErrUnauthorized)
		default:
			return nil, time.Time{}, fmt.Errorf("keystone: validate token: %s", errorText(status, body))
		}
	}
}

// do sends one request to Keystone and returns the status and the body
// (bounded).
func (k *keystoneAuth) do(ctx context.Context, method, path string, hdr map[string]string, body []byte) (int, []byte, error) {
	status, data, _, err := k.doHeader(ctx, method, path, hdr, body)
	return status, data, err
}

// doHeader is do that also returns the response headers.
func (k *keystoneAuth) doHeader(ctx context.Context, method, path string, hdr map[string]string, body []byte) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.base+path, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "neutrino")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for h, v := range hdr {
		req.Header.Set(h, v)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, k.base+stripQuery(path), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: read body: %w", method, k.base+stripQuery(path), err)
	}
	return resp.StatusCode, data, resp.Header, nil
}

func stripQuery(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// errorText describes a Keystone error response.
func errorText(status int, body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return fmt.Sprintf("HTTP %d: %s", status, e.Error.Message)
	}
	const max = 200
	s := strings.TrimSpace(string(body))
	if len(s) > max {
		s = s[:max] + "..."
	}
	if s == "" {
		return fmt.Sprintf("HTTP %d", status)
	}
	return fmt.Sprintf("HTTP %d: %s", status, s)
}

type ksRef struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Domain *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"domain"`
}

func (r *ksRef) domainID() string {
	if r == nil || r.Domain == nil {
		return ""
	}
	return r.Domain.ID
}

type ksToken struct {
	Token struct {
		ExpiresAt string `json:"expires_at"`
		User      ksRef  `json:"user"`
		Project   *ksRef `json:"project"`
		Domain    *ksRef `json:"domain"`
		Roles     []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"roles"`
	} `json:"token"`
}

func (k *keystoneAuth) parseValidation(body []byte) (*Identity, time.Time, error) {
	var t ksToken
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, time.Time{}, fmt.Errorf("keystone: decode token: %w", err)
	}
	tok := &t.Token
	expires, err := time.Parse(time.RFC3339Nano, tok.ExpiresAt)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("keystone: token expires_at %q: %w", tok.ExpiresAt, err)
	}
	if !k.now().Before(expires) {
		return nil, time.Time{}, fmt.Errorf("%w: token expired at %s", ErrUnauthorized, expires.Format(time.RFC3339))
	}
	if tok.User.ID == "" {
		return nil, time.Time{}, errors.New("keystone: token has no user")
	}
	id := &Identity{UserID: tok.User.ID, UserName: tok.User.Name, DomainID: tok.User.domainID()}
	switch {
	case tok.Project != nil:
		id.ProjectID, id.ProjectName, id.DomainID = tok.Project.ID, tok.Project.Name, tok.Project.domainID()
	case tok.Domain != nil:
		id.DomainID = tok.Domain.ID
	}
	for _, r := range tok.Roles {
		if r.Name != "" {
			id.Roles = append(id.Roles, r.Name)
		}
	}
	id.IsAdmin = id.HasRole(RoleAdmin)
	return id, expires, nil
}

// serviceAuth holds neutrino's own token when service credentials are set.
type serviceAuth struct {
	user, password, project   string
	userDomain, projectDomain string

	mu        sync.Mutex
	tok       string
	refreshAt time.Time
}

// token returns a valid service token, fetching a new one when none is held
// or the held one is near its expiry.
func (s *serviceAuth) token(ctx context.Context, k *keystoneAuth) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != "" && k.now().Before(s.refreshAt) {
		return s.tok, nil
	}
	tok, refreshAt, err := s.issue(ctx, k)
	if err != nil {
		return "", err
	}
	s.tok, s.refreshAt = tok, refreshAt
	return tok, nil
}

// invalidate forgets tok if it is still the held token.
func (s *serviceAuth) invalidate(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == tok {
		s.tok = ""
	}
}

type ksName struct {
	Name string `json:"name"`
}

type passwordAuthRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password struct {
				User struct {
					Name     string `json:"name"`
					Domain   ksName `json:"domain"`
					Password string `json:"password"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope struct {
			Project struct {
				Name   string `json:"name"`
				Domain ksName `json:"domain"`
			} `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

func (s *serviceAuth) issue(ctx context.Context, k *keystoneAuth) (string, time.Time, error) {
	var req passwordAuthRequest
	req.Auth.Identity.Methods = []string{"password"}
	u := &req.Auth.Identity.Password.User
	u.Name, u.Domain.Name, u.Password = s.user, s.userDomain, s.password
	p := &req.Auth.Scope.Project
	p.Name, p.Domain.Name = s.project, s.projectDomain
	body, err := json.Marshal(&req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: encode auth request: %w", err)
	}
	status, data, hdr, err := k.doHeader(ctx, http.MethodPost, "/auth/tokens?nocatalog", nil, body)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: get service token: %w", err)
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return "", time.Time{}, fmt.Errorf("keystone: get service token for %q in project %q: %s", s.user, s.project, errorText(status, data))
	}
	tok := hdr.Get(HeaderSubjectToken)
	if tok == "" {
		return "", time.Time{}, errors.New("keystone: get service token: no X-Subject-Token in response")
	}
	var t struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			IssuedAt  string `json:"issued_at"`
		} `json:"token"`
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: decode service token: %w", err)
	}
	expires, err := time.Parse(time.RFC3339Nano, t.Token.ExpiresAt)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: service token expires_at %q: %w", t.Token.ExpiresAt, err)
	}
	// Renew ahead of expiry: two minutes early, or halfway through a
	// shorter lifetime.
	now := k.now()
	margin := 2 * time.Minute
	if life := expires.Sub(now); life/2 < margin {
		margin = life / 2
	}
	k.log.DebugContext(ctx, "obtained keystone service token", "user", s.user, "project", s.project, "expires_at", expires)
	return tok, expires.Add(-margin), nil
}
