// Package access decides who is calling a project's API: the operator (admin
// token), a project API key acting for any user, or a connected user acting
// as themself through an RS256 user token.
package access

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
)

// Role of a caller.
type Role int

const (
	RoleUser   Role = iota + 1 // a connected user, through a user token
	RoleAPIKey                 // the project's server side, through an API key
	RoleAdmin                  // the operator, through SWITCHBOARD_ADMIN_TOKEN
)

// Principal is an authenticated caller of one project.
type Principal struct {
	Role    Role
	Project string
	// User is the token's subject for RoleUser; empty otherwise.
	User string
}

// Options configure a Checker.
type Options struct {
	Catalog    *catalog.Catalog
	AdminToken string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Checker authenticates requests.
type Checker struct {
	cat   *catalog.Catalog
	admin string
	now   func() time.Time
	cache *auth.TokenCache
}

// New returns a Checker.
func New(opts Options) *Checker {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Checker{cat: opts.Catalog, admin: opts.AdminToken, now: now, cache: auth.NewTokenCache(100_000)}
}

func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", apierr.Unauthorized("missing Authorization: Bearer <token>")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", apierr.Unauthorized("the Authorization header must be \"Bearer <token>\"")
	}
	return strings.TrimSpace(tok), nil
}

// Admin checks the operator token.
func (c *Checker) Admin(r *http.Request) error {
	tok, err := bearer(r)
	if err != nil {
		return err
	}
	if c.admin == "" {
		return apierr.Forbidden("operator calls are disabled: SWITCHBOARD_ADMIN_TOKEN is not set")
	}
	if !auth.EqualSecret(tok, c.admin) {
		return apierr.Unauthorized("invalid admin token")
	}
	return nil
}

// ExistingProject is Project for calls on a project that must exist: it
// authenticates first, so an unauthorized request learns nothing about the
// deployment, then answers 404 project_not_found for an unknown project.
func (c *Checker) ExistingProject(r *http.Request, p string) (Principal, error) {
	pr, err := c.Project(r, p)
	if err != nil {
		return pr, err
	}
	if _, ok := c.cat.Project(p); !ok {
		return pr, apierr.NotFound("project_not_found", "project %q does not exist", p)
	}
	return pr, nil
}

// ServerSide requires an API key (or the operator): calls that change or
// read the whole project, or start work on its behalf, are not for end
// users.
func ServerSide(pr Principal) error {
	if pr.Role == RoleUser {
		return apierr.Forbidden("this call needs the project API key, not a user token")
	}
	return nil
}

// Project authenticates a call on project p with an API key or a user
// token. A credential of another project is 403, not 401: it is valid, just
// not here.
func (c *Checker) Project(r *http.Request, p string) (Principal, error) {
	tok, err := bearer(r)
	if err != nil {
		return Principal{}, err
	}
	if auth.LooksLikeAPIKey(tok) {
		owner, ok := c.cat.ProjectForAPIKey(auth.HashAPIKey(tok))
		switch {
		case !ok:
			return Principal{}, apierr.Unauthorized("unknown API key")
		case owner != p:
			return Principal{}, apierr.Forbidden("this API key belongs to another project")
		}
		return Principal{Role: RoleAPIKey, Project: p}, nil
	}
	if c.admin != "" && auth.EqualSecret(tok, c.admin) {
		return Principal{Role: RoleAdmin, Project: p}, nil
	}
	claims, err := c.verifyUserToken(tok, p)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Role: RoleUser, Project: p, User: claims.Subject}, nil
}

func (c *Checker) verifyUserToken(tok, p string) (auth.Claims, error) {
	now := c.now()
	// Fast path: a token already verified with this project's current keys.
	// The cache is keyed by the key set, so rotating keys invalidates it.
	if keys, keySet := c.cat.UserTokenKeys(p); len(keys) > 0 {
		if cl, ok := c.cache.Get(keySet, tok, now); ok && (cl.Project == "" || cl.Project == p) {
			return cl, nil
		}
	}
	claimed, err := auth.ParseUnverifiedProject(tok)
	if err != nil {
		return auth.Claims{}, apierr.Unauthorized("invalid token: %v", err)
	}
	target := p
	if claimed != "" && claimed != p {
		// Verify against the project the token names; if it is genuine,
		// the caller is authenticated, just not for this project.
		target = claimed
	}
	keys, keySet := c.cat.UserTokenKeys(target)
	if len(keys) == 0 {
		if target != p {
			return auth.Claims{}, apierr.Unauthorized("invalid token: unknown project %q", claimed)
		}
		return auth.Claims{}, apierr.Unauthorized("project %q has no user token keys", p)
	}
	cl, ok := c.cache.Get(keySet, tok, now)
	if !ok {
		cl, err = auth.VerifyUserToken(tok, keys, now)
		if err != nil {
			if errors.Is(err, auth.ErrTokenExpired) {
				return auth.Claims{}, apierr.Unauthorized("the token has expired")
			}
			return auth.Claims{}, apierr.Unauthorized("invalid token: %v", err)
		}
		// A validly signed token still names a user id: it gets the rules
		// of every other id, since it ends up in subjects and keys (a 5,000
		// byte one made a subject the server refused, and its connection
		// with it).
		if err := ID("sub", cl.Subject); err != nil {
			return auth.Claims{}, apierr.Unauthorized("invalid token: its sub (the user id) is longer than %d bytes or not valid UTF-8", MaxIDLen)
		}
		c.cache.Put(keySet, tok, cl)
	}
	if target != p {
		return auth.Claims{}, apierr.Forbidden("this token belongs to project %q", claimed)
	}
	return cl, nil
}

// ActingUser resolves the connected user a call acts for: the token's
// subject for a user token, or the user named in the request for an API key
// (requested may come from the body or the X-Switchboard-User header).
// A user token may not act for someone else.
func ActingUser(pr Principal, requested string) (string, error) {
	if err := ID("user", requested); err != nil {
		return "", err
	}
	switch pr.Role {
	case RoleUser:
		if requested != "" && requested != pr.User {
			return "", apierr.Forbidden("a user token can only act for its own user")
		}
		return pr.User, nil
	default:
		if requested == "" {
			return "", apierr.BadRequest("missing_user", "an API key call must name the user (field \"user\" or header X-Switchboard-User)").WithField("user")
		}
		return requested, nil
	}
}
