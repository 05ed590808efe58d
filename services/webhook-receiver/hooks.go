package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/trigger"
	"github.com/switchboard-hq/switchboard/pkg/verify"
	"github.com/switchboard-hq/switchboard/pkg/wire"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
	sbv1 "github.com/switchboard-hq/switchboard/proto/switchboardv1"
)

// Answer is the JSON body of an accepted or deduplicated delivery (unless
// the manifest prescribes the provider's own answer).
type Answer struct {
	// Status is "accepted" (at least one new event stored) or
	// "deduplicated" (every event was stored before: nothing new starts).
	Status string `json:"status"`
	// Events are the stored events' ids, one per item of the delivery.
	Events []string `json:"events"`
	// Duplicates counts the items that were already stored.
	Duplicates int `json:"duplicates,omitempty"`
}

// Answer statuses.
const (
	StatusAccepted     = "accepted"
	StatusDeduplicated = "deduplicated"
)

// source is what a delivery is checked against: the integration's webhook
// and, for a per-credential URL, the credential.
type source struct {
	project     string
	integration *workflow.Integration
	webhook     *manifest.Webhook
	cred        *directory.Credential // nil for app-level
}

// appHook is /v1/hooks/{p}/{integration}.
func (s *Service) appHook(c *echo.Context) error {
	src, err := s.resolve(c.Param("p"), c.Param("integration"))
	if err != nil {
		return err
	}
	return s.handle(c, src)
}

// credentialHook is /v1/hooks/{p}/{integration}/{token}. Every way the
// token can fail — malformed, unknown, another project's or integration's,
// a credential that is not VALID — is the same 404, no sooner than the
// not-found floor, so neither the answer nor its timing says which.
func (s *Service) credentialHook(c *echo.Context) error {
	start := time.Now()
	notFound := func() error {
		t := time.NewTimer(time.Until(start.Add(s.opts.NotFoundFloor)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.Request().Context().Done():
		}
		return apierr.NotFound("webhook_not_found", "no webhook at this URL")
	}
	src, err := s.resolve(c.Param("p"), c.Param("integration"))
	if err != nil {
		return notFound()
	}
	token := c.Param("token")
	if len(token) < 16 || len(token) > 64 {
		return notFound()
	}
	cred, err := s.opts.Directory.CredentialByToken(c.Request().Context(), token)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return notFound()
	case err != nil:
		return apierr.New(http.StatusServiceUnavailable, "unavailable", "the directory is not available; retry later").Wrap(err)
	case cred.Project != src.project || cred.Integration != src.integration.ID || cred.Status != directory.CredentialValid:
		return notFound()
	}
	src.cred = cred
	return s.handle(c, src)
}

// resolve finds the project's integration and its webhook; anything
// missing is 404 before the body is read.
func (s *Service) resolve(p, id string) (source, error) {
	if !workflow.ValidID(p) || !workflow.ValidID(id) {
		return source{}, apierr.NotFound("unknown_integration", "no webhook integration %q in project %q", id, p)
	}
	if _, ok := s.opts.Catalog.Project(p); !ok {
		return source{}, apierr.NotFound("unknown_integration", "no webhook integration %q in project %q", id, p)
	}
	in, ok := s.opts.Catalog.Integration(p, id)
	if !ok || in.Effective().Webhook == nil {
		return source{}, apierr.NotFound("unknown_integration", "no webhook integration %q in project %q", id, p)
	}
	return source{project: p, integration: in, webhook: in.Effective().Webhook}, nil
}

// logger is the delivery's logger. It is made only where a line is
// written: With copies its attributes, on every delivery otherwise.
func (s *Service) logger(src source) *slog.Logger {
	log := s.log.With("project", src.project, "integration", src.integration.ID)
	if src.cred != nil {
		log = log.With("credential", src.cred.ID)
	}
	return log
}

func (s *Service) handle(c *echo.Context, src source) error {
	r := c.Request()
	ctx := r.Context()
	v, err := src.webhook.Verifier()
	if err != nil {
		// Fail closed: a source whose spec this build cannot run accepts
		// nothing until an operator fixes it (503, so the provider retries).
		s.logger(src).Warn("webhook refused: unusable verification", "code", verify.CodeOf(err))
		return verifyError(err)
	}
	// The body is capped before anything reads it (413, chunked too); the
	// integration and the token were resolved before.
	body, err := httpx.ReadBody(c, s.opts.MaxBody)
	if err != nil {
		return err
	}
	secrets, err := s.secrets(ctx, src)
	if err != nil {
		s.logger(src).Warn("webhook refused: secrets unreadable", "err", err)
		return apierr.New(http.StatusServiceUnavailable, "secrets_unavailable", "the webhook's secrets cannot be read; retry later").Wrap(err)
	}
	req := verify.FromHTTP(r, body, s.publicBase(r))

	if resp, handled, err := v.Handshake(req, secrets); handled {
		if err != nil {
			s.logger(src).Info("handshake refused", "code", verify.CodeOf(err))
			return verifyError(err)
		}
		return s.answerHandshake(c, src, resp)
	}
	if !src.webhook.AllowsMethod(r.Method) {
		return apierr.New(http.StatusMethodNotAllowed, "method_not_allowed", "this webhook accepts %s", strings.Join(methodsOf(src.webhook), ", "))
	}
	res, err := v.Check(req, secrets)
	if err != nil {
		s.logger(src).Info("webhook refused", "code", verify.CodeOf(err), "reason", err.Error())
		return verifyError(err)
	}

	var query url.Values // nil is no parameters, as an empty map: most deliveries have none
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
	}
	items, err := src.webhook.Extract(manifest.Delivery{
		Header: r.Header, Query: query, ContentType: r.Header.Get("Content-Type"), Body: body,
	})
	var tooMany *manifest.TooManyItemsError
	if errors.As(err, &tooMany) {
		return apierr.New(http.StatusRequestEntityTooLarge, "too_many_events", "%s", tooMany.Error())
	}
	if err != nil {
		return apierr.Internal(err)
	}
	ans, err := s.publish(ctx, src, items)
	if err != nil {
		s.logger(src).Warn("webhook events not stored", "err", err, "items", len(items))
		return err
	}
	if ans.Duplicates > 0 {
		// A duplicate starts nothing and has no decision record of its own
		// (nothing reaches the router): this line is its record, naming the
		// events it repeats.
		s.logger(src).Info("webhook deduplicated", "duplicates", ans.Duplicates, "events", ans.Events)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.logger(src).Debug("webhook accepted", "events", len(items), "duplicates", ans.Duplicates, "secret", res.SecretID)
	}
	if ans.Status == StatusAccepted {
		if rs := src.webhook.Response; rs != nil {
			status := rs.Status
			if status == 0 {
				status = http.StatusOK
			}
			ct := rs.ContentType
			if ct == "" {
				ct = "text/plain; charset=utf-8"
			}
			c.Response().Header().Set("X-Content-Type-Options", "nosniff")
			return c.Blob(status, ct, []byte(rs.Body))
		}
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, ans.appendJSON(make([]byte, 0, 64+32*len(ans.Events))))
}

// appendJSON appends a's JSON as c.JSON sends it (encoding/json, HTML
// escaped, a newline after), without reflection on every delivery: an
// event id is a ULID, written as it is; any other string is
// json.Marshal's.
func (a Answer) appendJSON(b []byte) []byte {
	b = append(b, `{"status":`...)
	b = appendJSONString(b, a.Status)
	b = append(b, `,"events":`...)
	if a.Events == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, e := range a.Events {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e)
		}
		b = append(b, ']')
	}
	if a.Duplicates != 0 {
		b = append(b, `,"duplicates":`...)
		b = strconv.AppendInt(b, int64(a.Duplicates), 10)
	}
	return append(b, "}\n"...)
}

func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// publishConcurrency bounds how many of one delivery's events are stored
// at once. Each store is one JetStream round trip (the event is its own
// dedupe claim, Dedupe.InSubject); a 100-event HubSpot batch stored one
// after the other could still outlast the provider's timeout.
const publishConcurrency = 16

// publish stores every item as an INTEGRATION trigger, each under a dedupe
// key that outlives the provider's retries, up to publishConcurrency at a
// time (a batch's events are independent; providers do not promise their
// order either). Any failure is answered 503: the provider retries the
// whole delivery, and the items stored already come back as duplicates, so
// none is lost or doubled.
func (s *Service) publish(ctx context.Context, src source, items []manifest.Item) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
	defer cancel()
	now := timestamppb.Now()
	rev := s.opts.Catalog.Revision()
	kind := eventKind(src.integration)
	results := make([]trigger.Result, len(items))
	errs := make([]error, len(items))
	store := func(i int) {
		it := items[i]
		ev := &sbv1.TriggerEvent{
			Id:          trigger.NewID(),
			Project:     src.project,
			Kind:        kind,
			Name:        it.Type,
			Integration: src.integration.ID,
			Payload:     it.Payload,
			ReceivedAt:  now,
		}
		pe := &sbv1.ProviderEvent{EventType: it.Type, EventId: it.ID, ProviderAccountId: it.AccountID, Source: "webhook"}
		// The dedupe key's scope: the integration for app-level URLs (one
		// event, fanned out by the router to every credential of the
		// account), the credential for its own URL (two subscriptions may
		// receive the same payload, and each must get it).
		key := it.ID
		// An API Resource's item may name its user (webhook.userId): the
		// router routes it to that user. A credential's URL names its own.
		ev.User = it.UserID
		if src.cred != nil {
			ev.User, ev.Credential = src.cred.User, src.cred.ID
			if pe.ProviderAccountId == "" {
				pe.ProviderAccountId = src.cred.ProviderAccountID
			}
			key = "cred:" + src.cred.User + "\x00" + src.cred.ID + "\x00" + it.ID
		}
		ev.Detail = &sbv1.TriggerEvent_Provider{Provider: pe}
		// InSubject: every event of the source has one subject (the
		// integration's, see trigger.SubjectKey), so the stored event is
		// its own claim — one write per event, not a claim and a publish.
		results[i], errs[i] = s.opts.Triggers.Publish(ctx, ev,
			trigger.WithDedupe(trigger.Dedupe{Source: "webhook." + src.integration.ID, Key: key, TTL: src.webhook.TTL(), InSubject: true}),
			trigger.WithCatalogRevision(rev))
	}
	if len(items) == 1 {
		store(0) // the common case, without a goroutine
	} else {
		var wg sync.WaitGroup
		sem := make(chan struct{}, publishConcurrency)
		for i := range items {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				store(i)
			})
		}
		wg.Wait()
	}
	ans := Answer{Status: StatusDeduplicated, Events: make([]string, 0, len(items))}
	for i, res := range results {
		var tooLarge *wire.TooLargeError
		switch {
		case errors.As(errs[i], &tooLarge):
			// Permanent: a retry could never be stored, so not a 503 the
			// provider would retry for days.
			return Answer{}, apierr.New(http.StatusRequestEntityTooLarge, "event_too_large", "%s", tooLarge.Error()).Wrap(errs[i])
		case errs[i] != nil && wire.Permanent(errs[i]):
			return Answer{}, apierr.BadRequest("event_refused", "an event of the delivery cannot be stored: %v", errs[i]).Wrap(errs[i])
		case errs[i] != nil:
			return Answer{}, apierr.New(http.StatusServiceUnavailable, "unavailable",
				"the delivery could not be stored; send it again (events already stored are deduplicated)").Wrap(errs[i])
		}
		ans.Events = append(ans.Events, res.EventID)
		if res.Duplicate {
			ans.Duplicates++
		} else {
			ans.Status = StatusAccepted
		}
	}
	if len(items) == 0 {
		ans.Status = StatusAccepted
	}
	return ans, nil
}

// eventKind is the trigger kind of a source's events: API_RESOURCE for an
// API Resource (the customer's own API), INTEGRATION otherwise. Both are
// decided alike; the kind keeps them apart in TRIGGERS and in the records.
func eventKind(in *workflow.Integration) sbv1.Kind {
	if in.Effective().Resource {
		return sbv1.Kind_API_RESOURCE
	}
	return sbv1.Kind_INTEGRATION
}

// answerHandshake sends a handshake's answer; Asana's also stores the
// subscription's secret on the credential first.
func (s *Service) answerHandshake(c *echo.Context, src source, resp *verify.Response) error {
	if resp.StoreSecret != "" {
		if src.cred == nil {
			return apierr.BadRequest("handshake_needs_credential_url",
				"this handshake issues a per-subscription secret: register the credential's own webhook URL (…/hooks/%s/%s/{token})", src.project, src.integration.ID)
		}
		if err := s.storeHookSecret(c.Request().Context(), src.cred, resp.StoreSecret); err != nil {
			return err
		}
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			c.Response().Header().Add(k, v)
		}
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	ct := c.Response().Header().Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	return c.Blob(status, ct, resp.Body)
}

// publicBase is the base of the URL the provider called, for schemes that
// sign it. The configured public URL when there is one (behind a proxy the
// request's own Host is the proxy's view); else this server's own scheme
// and Host, as a provider calling it directly sent them. A Host an attacker
// changes only makes the signed URL differ: it cannot make a signature
// match without the secret.
func (s *Service) publicBase(r *http.Request) string {
	if s.opts.PublicBaseURL != "" {
		return s.opts.PublicBaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// verifyError maps a verification refusal to its answer: 401 for the
// sender's mistakes, 503 for ours (fail closed). The message is the
// verifier's, which never carries secret material.
func verifyError(err error) error {
	code := verify.CodeOf(err)
	if code == "" {
		code = verify.ErrUnknownScheme
	}
	msg := err.Error()
	return apierr.New(code.HTTPStatus(), string(code), "%s", msg)
}

func methodsOf(w *manifest.Webhook) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if w.AllowsMethod(m) {
			out = append(out, m)
		}
	}
	return out
}
