package fakeprovider

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Webhook subscription APIs, in the providers' own wire formats, for the
// connection lifecycle's subscriptions (manifest `subscription:`):
//
//	POST   /api/1.0/webhooks       Asana: Bearer access token (one this
//	                               provider issued), JSON {"data": {"resource",
//	                               "target", "filters"?}}. Before answering,
//	                               the activation handshake: a POST to target
//	                               with X-Hook-Secret, which must answer 2xx
//	                               echoing the header → 201 {"data": {"gid",
//	                               "resource": {"gid"}, "target", "active"}};
//	                               a failed handshake is 400 {"errors": […]}
//	DELETE /api/1.0/webhooks/{gid} Asana → 200 {"data": {}}; 404 unknown
//	GET    /api/1.0/webhooks       Asana: the caller's webhooks {"data": […]}
//	POST   /v1/webhook_endpoints   Stripe: Bearer sk_… (or Basic sk_…:),
//	                               form url, enabled_events[], metadata[k]
//	                               → {"id": "we_…", "object":
//	                               "webhook_endpoint", "secret": "whsec_…", …}
//	DELETE /v1/webhook_endpoints/{id}  Stripe → {"id", "object", "deleted": true};
//	                               404 {"error": {"code": "resource_missing"}}
//	GET    /v1/webhook_endpoints   Stripe: {"object": "list", "data": […]}
//	POST   /api/v2/team/{team}/webhook  ClickUp: Authorization: the token
//	                               itself (pk_… or one this provider issued),
//	                               JSON {"endpoint", "events"} → {"id",
//	                               "webhook": {"id", "team_id", "endpoint",
//	                               "events", "health", "secret"}}; errors
//	                               {"err", "ECODE"}
//	DELETE /api/v2/webhook/{id}    ClickUp → {}
//	GET    /api/v2/team/{team}/webhook  ClickUp: {"webhooks": […]}
//
// Controls (not part of any provider's API):
//
//	GET  /fake/subscriptions       every live subscription of both
//	POST /fake/fail                {"op": "create"|"delete", "status": 500,
//	                               "count": 3}: the next count such calls
//	                               answer status (count 0: until reset)
//	POST /fake/deliver             {"id": "<subscription id>"} (no body: the
//	                               newest): send the subscription one event,
//	                               signed as its provider signs (Asana
//	                               X-Hook-Signature with the handshake's
//	                               secret, Stripe-Signature with whsec_…);
//	                               answers the target's status and body

// Subscription is one live webhook subscription at the fake.
type Subscription struct {
	Provider  string    `json:"provider"` // asana | stripe
	ID        string    `json:"id"`
	Target    string    `json:"target"`
	Events    []string  `json:"events,omitempty"`
	Resource  string    `json:"resource,omitempty"`
	Account   string    `json:"account,omitempty"`
	Secret    string    `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
}

// SubscriptionCalls counts subscriptions created and deleted, and the
// calls answered with an injected failure.
type SubscriptionCalls struct {
	Creates       int `json:"creates"`
	Deletes       int `json:"deletes"`
	FailedCreates int `json:"failedCreates"`
	FailedDeletes int `json:"failedDeletes"`
}

// subscriptions is the fake's subscription store; the zero value is ready.
type subscriptions struct {
	mu    sync.Mutex
	live  map[string]*Subscription
	calls SubscriptionCalls
	fail  map[string]*failure // op → injected failure
}

type failure struct {
	status, left int // left 0: every call
}

// handshakeTimeout bounds Asana's activation handshake (Asana's own limit).
const handshakeTimeout = 10 * time.Second

func (p *Provider) subscriptionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/1.0/webhooks", p.asanaCreate)
	mux.HandleFunc("GET /api/1.0/webhooks", p.asanaList)
	mux.HandleFunc("DELETE /api/1.0/webhooks/{gid}", p.asanaDelete)
	mux.HandleFunc("POST /v1/webhook_endpoints", p.stripeCreate)
	mux.HandleFunc("GET /v1/webhook_endpoints", p.stripeList)
	mux.HandleFunc("DELETE /v1/webhook_endpoints/{id}", p.stripeDelete)
	mux.HandleFunc("POST /api/v2/team/{team}/webhook", p.clickupCreate)
	mux.HandleFunc("GET /api/v2/team/{team}/webhook", p.clickupList)
	mux.HandleFunc("DELETE /api/v2/webhook/{id}", p.clickupDelete)
	mux.HandleFunc("GET /fake/subscriptions", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"subscriptions": p.Subscriptions(), "calls": p.SubscriptionCalls()})
	})
	mux.HandleFunc("POST /fake/fail", p.failControl)
	mux.HandleFunc("POST /fake/deliver", p.deliverControl)
}

// Subscriptions returns the live subscriptions, oldest first.
func (p *Provider) Subscriptions() []Subscription {
	s := &p.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Subscription, 0, len(s.live))
	for _, x := range s.live {
		out = append(out, *x)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// SubscriptionCalls returns the calls served so far.
func (p *Provider) SubscriptionCalls() SubscriptionCalls {
	p.subs.mu.Lock()
	defer p.subs.mu.Unlock()
	return p.subs.calls
}

// FailSubscriptions makes the next count create or delete calls ("create",
// "delete") answer status; count 0 fails every call until status 0 resets.
func (p *Provider) FailSubscriptions(op string, status, count int) {
	s := &p.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == nil {
		s.fail = map[string]*failure{}
	}
	if status == 0 {
		delete(s.fail, op)
		return
	}
	s.fail[op] = &failure{status: status, left: count}
}

// IssueAccessToken mints an access token for account, as if granted by a
// connect flow: for tests that store credentials directly.
func (p *Provider) IssueAccessToken(account string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := newToken()
	p.access[at] = &grant{account: account, expires: p.opts.Now().Add(p.opts.TokenTTL)}
	return at
}

// injected returns the status an op must fail with now, or 0, counting
// the injected failures (put and remove count the successes).
func (s *subscriptions) injected(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fail[op]
	status := 0
	if f != nil {
		status = f.status
		if f.left > 0 {
			if f.left--; f.left == 0 {
				delete(s.fail, op)
			}
		}
	}
	switch {
	case op == "create" && status != 0:
		s.calls.FailedCreates++
	case status != 0:
		s.calls.FailedDeletes++
	}
	return status
}

func (s *subscriptions) put(x *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == nil {
		s.live = map[string]*Subscription{}
	}
	s.live[x.Provider+"/"+x.ID] = x
	s.calls.Creates++
}

// remove deletes a subscription of provider owned by account ("" any).
func (s *subscriptions) remove(provider, id, account string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.live[provider+"/"+id]
	if x == nil || (account != "" && x.Account != account) {
		return false
	}
	delete(s.live, provider+"/"+id)
	s.calls.Deletes++
	return true
}

func (s *subscriptions) of(provider, account string) []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Subscription
	for _, x := range s.live {
		if x.Provider == provider && x.Account == account {
			out = append(out, *x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (p *Provider) failControl(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Op     string `json:"op"`
		Status int    `json:"status"`
		Count  int    `json:"count"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&b); err != nil || (b.Op != "create" && b.Op != "delete") ||
		(b.Status != 0 && (b.Status < 400 || b.Status > 599)) || b.Count < 0 {
		http.Error(w, `body: {"op": "create"|"delete", "status": 400..599 (0 resets), "count": n}`, http.StatusBadRequest)
		return
	}
	p.FailSubscriptions(b.Op, b.Status, b.Count)
	w.WriteHeader(http.StatusNoContent)
}

// Asana.

// asanaAccount is the account of a valid Bearer access token, or "".
func (p *Provider) asanaAccount(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.access[tok]
	if g == nil || p.opts.Now().After(g.expires) {
		return ""
	}
	return g.account + "\x00" // an account may be "" (no id); never confused with "no token"
}

func asanaError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{"message": msg}}})
}

func (p *Provider) asanaCreate(w http.ResponseWriter, r *http.Request) {
	acct := p.asanaAccount(r)
	if acct == "" {
		asanaError(w, 401, "Not Authorized")
		return
	}
	acct = strings.TrimSuffix(acct, "\x00")
	var b struct {
		Data struct {
			Resource string `json:"resource"`
			Target   string `json:"target"`
		} `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&b); err != nil {
		asanaError(w, 400, "Could not parse request data, invalid JSON")
		return
	}
	switch t, err := url.Parse(b.Data.Target); {
	case b.Data.Resource == "":
		asanaError(w, 400, "resource: Missing input")
		return
	case b.Data.Target == "" || err != nil || !t.IsAbs():
		asanaError(w, 400, "target: Invalid URL")
		return
	}
	if status := p.subs.injected("create"); status != 0 {
		asanaError(w, status, fmt.Sprintf("injected failure (%d)", status))
		return
	}
	// The create blocks on the handshake, as Asana's does: the target must
	// echo X-Hook-Secret before the webhook exists.
	secret := randomHex(32)
	if err := handshake(r.Context(), b.Data.Target, secret); err != nil {
		asanaError(w, 400, "Could not complete activation handshake with target URL: "+err.Error())
		return
	}
	sub := &Subscription{Provider: "asana", ID: "12" + randomDigits(14), Target: b.Data.Target,
		Resource: b.Data.Resource, Account: acct, Secret: secret, CreatedAt: p.opts.Now()}
	p.subs.put(sub)
	writeJSON(w, 201, map[string]any{"data": asanaView(sub)})
}

func asanaView(s *Subscription) map[string]any {
	return map[string]any{"gid": s.ID, "resource_type": "webhook", "active": true, "target": s.Target,
		"resource": map[string]any{"gid": s.Resource, "resource_type": "project"}, "created_at": s.CreatedAt.UTC().Format(time.RFC3339)}
}

func handshake(ctx context.Context, target, secret string) error {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(nil))
	if err != nil {
		return err
	}
	req.Header.Set("X-Hook-Secret", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the target answered %d", resp.StatusCode)
	}
	if resp.Header.Get("X-Hook-Secret") != secret {
		return fmt.Errorf("the target did not echo X-Hook-Secret")
	}
	return nil
}

func (p *Provider) asanaList(w http.ResponseWriter, r *http.Request) {
	acct := p.asanaAccount(r)
	if acct == "" {
		asanaError(w, 401, "Not Authorized")
		return
	}
	data := []map[string]any{}
	for _, s := range p.subs.of("asana", strings.TrimSuffix(acct, "\x00")) {
		data = append(data, asanaView(&s))
	}
	writeJSON(w, 200, map[string]any{"data": data})
}

func (p *Provider) asanaDelete(w http.ResponseWriter, r *http.Request) {
	acct := p.asanaAccount(r)
	if acct == "" {
		asanaError(w, 401, "Not Authorized")
		return
	}
	if status := p.subs.injected("delete"); status != 0 {
		asanaError(w, status, fmt.Sprintf("injected failure (%d)", status))
		return
	}
	if !p.subs.remove("asana", r.PathValue("gid"), strings.TrimSuffix(acct, "\x00")) {
		asanaError(w, 404, "webhook: Not Found")
		return
	}
	writeJSON(w, 200, map[string]any{"data": map[string]any{}})
}

// Stripe.

// stripeKey is the secret key a request authenticates with (Bearer, or
// Basic with the key as user name), or "".
func stripeKey(r *http.Request) string {
	if k, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && strings.HasPrefix(k, "sk_") {
		return k
	}
	if u, _, ok := r.BasicAuth(); ok && strings.HasPrefix(u, "sk_") {
		return u
	}
	return ""
}

func stripeError(w http.ResponseWriter, status int, typ, code, msg string) {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func (p *Provider) stripeCreate(w http.ResponseWriter, r *http.Request) {
	key := stripeKey(r)
	if key == "" {
		stripeError(w, 401, "invalid_request_error", "", "Invalid API Key provided")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || r.ParseForm() != nil {
		stripeError(w, 400, "invalid_request_error", "", "the body must be application/x-www-form-urlencoded")
		return
	}
	target, events := r.PostForm.Get("url"), r.PostForm["enabled_events[]"]
	switch t, err := url.Parse(target); {
	case target == "":
		stripeError(w, 400, "invalid_request_error", "parameter_missing", "Missing required param: url.")
		return
	case err != nil || !t.IsAbs():
		stripeError(w, 400, "invalid_request_error", "url_invalid", "Invalid URL: "+target)
		return
	case len(events) == 0:
		stripeError(w, 400, "invalid_request_error", "parameter_missing", "Missing required param: enabled_events.")
		return
	}
	if status := p.subs.injected("create"); status != 0 {
		stripeError(w, status, "api_error", "", fmt.Sprintf("injected failure (%d)", status))
		return
	}
	meta := map[string]string{}
	for k, vs := range r.PostForm {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(vs) > 0 {
			meta[strings.TrimSuffix(name, "]")] = vs[0]
		}
	}
	sub := &Subscription{Provider: "stripe", ID: "we_" + randomHex(12), Target: target, Events: events, Account: key,
		Secret: "whsec_" + randomHex(16), CreatedAt: p.opts.Now()}
	p.subs.put(sub)
	v := stripeView(sub, meta)
	v["secret"] = sub.Secret // shown on create only, as Stripe does
	writeJSON(w, 200, v)
}

func stripeView(s *Subscription, meta map[string]string) map[string]any {
	if meta == nil {
		meta = map[string]string{}
	}
	return map[string]any{"id": s.ID, "object": "webhook_endpoint", "url": s.Target, "enabled_events": s.Events,
		"status": "enabled", "livemode": false, "created": s.CreatedAt.Unix(), "metadata": meta, "api_version": nil}
}

func (p *Provider) stripeList(w http.ResponseWriter, r *http.Request) {
	key := stripeKey(r)
	if key == "" {
		stripeError(w, 401, "invalid_request_error", "", "Invalid API Key provided")
		return
	}
	data := []map[string]any{}
	for _, s := range p.subs.of("stripe", key) {
		data = append(data, stripeView(&s, nil))
	}
	writeJSON(w, 200, map[string]any{"object": "list", "data": data, "has_more": false, "url": "/v1/webhook_endpoints"})
}

func (p *Provider) stripeDelete(w http.ResponseWriter, r *http.Request) {
	key := stripeKey(r)
	if key == "" {
		stripeError(w, 401, "invalid_request_error", "", "Invalid API Key provided")
		return
	}
	if status := p.subs.injected("delete"); status != 0 {
		stripeError(w, status, "api_error", "", fmt.Sprintf("injected failure (%d)", status))
		return
	}
	id := r.PathValue("id")
	if !p.subs.remove("stripe", id, key) {
		stripeError(w, 404, "invalid_request_error", "resource_missing", fmt.Sprintf("No such webhook endpoint: '%s'", id))
		return
	}
	writeJSON(w, 200, map[string]any{"id": id, "object": "webhook_endpoint", "deleted": true})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

// Deliver sends subscription id one sample event, signed as its provider
// signs deliveries, and returns the target's status and body.
func (p *Provider) Deliver(ctx context.Context, id string) (int, string, error) {
	var sub *Subscription
	for _, s := range p.Subscriptions() {
		if s.ID == id {
			sub = &s
			break
		}
	}
	if sub == nil {
		return 0, "", fmt.Errorf("no subscription %q", id)
	}
	now := p.opts.Now()
	var body []byte
	header := http.Header{"Content-Type": {"application/json"}}
	switch sub.Provider {
	case "clickup":
		typ := "taskCreated"
		if len(sub.Events) > 0 && sub.Events[0] != "*" {
			typ = sub.Events[0]
		}
		body, _ = json.Marshal(map[string]any{"event": typ, "task_id": randomHex(4), "webhook_id": sub.ID,
			"history_items": []map[string]any{{"id": "2" + randomDigits(17), "type": 1, "date": fmt.Sprint(now.UnixMilli()), "field": "status"}}})
		header.Set("X-Signature", hmacHex(sub.Secret, body))
	case "asana":
		body, _ = json.Marshal(map[string]any{"events": []map[string]any{{
			"action": "added", "created_at": now.UTC().Format(time.RFC3339Nano),
			"resource": map[string]any{"gid": "12" + randomDigits(14), "resource_type": "task", "resource_subtype": "default_task"},
			"parent":   map[string]any{"gid": sub.Resource, "resource_type": "project"},
			"user":     map[string]any{"gid": "12" + randomDigits(14), "resource_type": "user"},
		}}})
		header.Set("X-Hook-Signature", hmacHex(sub.Secret, body))
	default:
		typ := "customer.created"
		if len(sub.Events) > 0 && sub.Events[0] != "*" {
			typ = sub.Events[0]
		}
		body, _ = json.Marshal(map[string]any{"id": "evt_" + randomHex(12), "object": "event", "type": typ,
			"created": now.Unix(), "livemode": false, "api_version": "2024-06-20",
			"data": map[string]any{"object": map[string]any{"id": "cus_" + randomHex(7), "object": "customer"}}})
		ts := fmt.Sprint(now.Unix())
		header.Set("Stripe-Signature", "t="+ts+",v1="+hmacHex(sub.Secret, []byte(ts+"."+string(body))))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Target, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

func (p *Provider) deliverControl(w http.ResponseWriter, r *http.Request) {
	var b struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&b); err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, `body: {"id": "<subscription id>"} (none: the newest subscription)`, http.StatusBadRequest)
		return
	}
	if b.ID == "" {
		all := p.Subscriptions()
		if len(all) == 0 {
			http.Error(w, "no subscriptions", http.StatusNotFound)
			return
		}
		b.ID = all[len(all)-1].ID
	}
	status, body, err := p.Deliver(r.Context(), b.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	writeJSON(w, 200, map[string]any{"status": status, "body": json.RawMessage(jsonOrString(body))})
}

func jsonOrString(s string) []byte {
	if json.Valid([]byte(s)) && s != "" {
		return []byte(s)
	}
	b, _ := json.Marshal(s)
	return b
}

func hmacHex(key string, msg []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

// ClickUp.

// clickupToken is the token a request authenticates with: the
// Authorization header as is (ClickUp takes no "Bearer" prefix), a
// personal token pk_… or an access token this provider issued.
func (p *Provider) clickupToken(r *http.Request) string {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if strings.HasPrefix(tok, "pk_") {
		return tok
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if g := p.access[tok]; g != nil && !p.opts.Now().After(g.expires) {
		return tok
	}
	return ""
}

func clickupError(w http.ResponseWriter, status int, msg, code string) {
	writeJSON(w, status, map[string]string{"err": msg, "ECODE": code})
}

func clickupView(s *Subscription) map[string]any {
	return map[string]any{"id": s.ID, "userid": 183, "team_id": s.Resource, "endpoint": s.Target, "client_id": "switchboard",
		"events": s.Events, "task_id": nil, "list_id": nil, "folder_id": nil, "space_id": nil,
		"health": map[string]any{"status": "active", "fail_count": 0}}
}

func (p *Provider) clickupCreate(w http.ResponseWriter, r *http.Request) {
	tok := p.clickupToken(r)
	if tok == "" {
		clickupError(w, 401, "Token invalid", "OAUTH_025")
		return
	}
	var b struct {
		Endpoint string   `json:"endpoint"`
		Events   []string `json:"events"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&b); err != nil {
		clickupError(w, 400, "Invalid JSON", "INPUT_001")
		return
	}
	switch t, err := url.Parse(b.Endpoint); {
	case b.Endpoint == "" || err != nil || !t.IsAbs():
		clickupError(w, 400, "Endpoint must be a valid url", "HOOK_001")
		return
	case len(b.Events) == 0:
		clickupError(w, 400, "Events must be an array of strings", "HOOK_002")
		return
	}
	if status := p.subs.injected("create"); status != 0 {
		clickupError(w, status, fmt.Sprintf("injected failure (%d)", status), "FAKE_001")
		return
	}
	id := randomHex(4) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(6)
	sub := &Subscription{Provider: "clickup", ID: id, Target: b.Endpoint, Events: b.Events, Resource: r.PathValue("team"),
		Account: tok, Secret: strings.ToUpper(randomHex(20)), CreatedAt: p.opts.Now()}
	p.subs.put(sub)
	v := clickupView(sub)
	v["secret"] = sub.Secret
	writeJSON(w, 200, map[string]any{"id": id, "webhook": v})
}

func (p *Provider) clickupList(w http.ResponseWriter, r *http.Request) {
	tok := p.clickupToken(r)
	if tok == "" {
		clickupError(w, 401, "Token invalid", "OAUTH_025")
		return
	}
	out := []map[string]any{}
	for _, s := range p.subs.of("clickup", tok) {
		if s.Resource == r.PathValue("team") {
			out = append(out, clickupView(&s))
		}
	}
	writeJSON(w, 200, map[string]any{"webhooks": out})
}

func (p *Provider) clickupDelete(w http.ResponseWriter, r *http.Request) {
	tok := p.clickupToken(r)
	if tok == "" {
		clickupError(w, 401, "Token invalid", "OAUTH_025")
		return
	}
	if status := p.subs.injected("delete"); status != 0 {
		clickupError(w, status, fmt.Sprintf("injected failure (%d)", status), "FAKE_001")
		return
	}
	if !p.subs.remove("clickup", r.PathValue("id"), tok) {
		clickupError(w, 404, "Webhook not found", "HOOK_006")
		return
	}
	writeJSON(w, 200, map[string]any{})
}
