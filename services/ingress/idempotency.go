package ingress

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/idempotency"
)

// HeaderIdempotencyKey and HeaderReplayed are the idempotency headers.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderReplayed       = "Idempotent-Replayed"
)

// idempotent claims the request's Idempotency-Key, if it has one. It
// returns the original record when the request is a repeat (and marks the
// answer Idempotent-Replayed), nil when this request goes ahead.
//
// It fills rec's fingerprint and time, so the caller can complete the claim
// with the same record later.
func (s *Service) idempotent(c *echo.Context, scope string, rec *idempotency.Record, parts ...[]byte) (*idempotency.Record, error) {
	key := c.Request().Header.Get(HeaderIdempotencyKey)
	if key == "" {
		return nil, nil
	}
	if len(key) > idempotency.MaxKeyLen {
		return nil, apierr.BadRequest("invalid_field", "Idempotency-Key is longer than %d characters", idempotency.MaxKeyLen).WithField("Idempotency-Key")
	}
	rec.Fingerprint = idempotency.Fingerprint(parts...)
	rec.CreatedAt = time.Now().UTC()
	prev, err := s.idem.Claim(c.Request().Context(), scope, key, *rec)
	switch {
	case errors.Is(err, idempotency.ErrReused):
		return nil, apierr.New(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"Idempotency-Key %q was already used with a different request", key).WithField("Idempotency-Key")
	case err != nil:
		return nil, apierr.Unavailable(err)
	case prev != nil:
		c.Response().Header().Set(HeaderReplayed, "true")
		return prev, nil
	}
	return nil, nil
}

// releaseIdempotency forgets the claim of a request that failed before its
// trigger was stored.
func (s *Service) releaseIdempotency(c *echo.Context, scope string) {
	key := c.Request().Header.Get(HeaderIdempotencyKey)
	if key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.idem.Release(ctx, scope, key); err != nil {
		s.log.Warn("idempotency key not released", "err", err)
	}
}
