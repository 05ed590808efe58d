package fakeprovider_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
)

func call(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return res.StatusCode, out
}

func TestAsanaWebhooks(t *testing.T) {
	fp := fakeprovider.New(fakeprovider.Options{})
	srv := httptest.NewServer(fp.Handler())
	t.Cleanup(srv.Close)
	var echoed, signature string
	var delivered []byte
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("X-Hook-Secret"); h != "" {
			echoed = h
			w.Header().Set("X-Hook-Secret", echoed)
			return
		}
		signature = r.Header.Get("X-Hook-Signature")
		delivered, _ = io.ReadAll(r.Body)
	}))
	t.Cleanup(target.Close)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) }))
	t.Cleanup(refuse.Close)
	tok := fp.IssueAccessToken("acct-1")
	create := func(target, token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/1.0/webhooks", strings.NewReader(`{"data":{"resource":"1201","target":"`+target+`"}}`))
		req.Header.Set("Authorization", "Bearer "+token)
		return call(t, req)
	}
	tests := []struct {
		name, target, token string
		want                int
	}{
		{"no token", target.URL, "nope", 401},
		{"handshake refused", refuse.URL, tok, 400},
		{"created after the handshake", target.URL, tok, 201},
	}
	var gid string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := create(tt.target, tt.token)
			if status != tt.want {
				t.Fatalf("status %d %v", status, body)
			}
			if status == 201 {
				gid, _ = body["data"].(map[string]any)["gid"].(string)
			}
		})
	}
	subs := fp.Subscriptions()
	if len(subs) != 1 || subs[0].ID != gid || subs[0].Secret != echoed || echoed == "" {
		t.Fatalf("subs %+v echoed %q", subs, echoed)
	}
	// A delivery is signed with the handshake's secret, as Asana signs.
	if status, _, err := fp.Deliver(t.Context(), gid); err != nil || status != 200 {
		t.Fatalf("deliver: %d %v", status, err)
	}
	mac := hmac.New(sha256.New, []byte(echoed))
	mac.Write(delivered)
	if signature != hex.EncodeToString(mac.Sum(nil)) || !strings.Contains(string(delivered), `"action":"added"`) {
		t.Fatalf("delivery %s signed %q", delivered, signature)
	}
	fp.FailSubscriptions("delete", 503, 1)
	del := func() int {
		req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/api/1.0/webhooks/"+gid, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		s, _ := call(t, req)
		return s
	}
	for i, want := range []int{503, 200, 404} {
		if got := del(); got != want {
			t.Fatalf("delete %d: %d, want %d", i, got, want)
		}
	}
	if c := fp.SubscriptionCalls(); c.Creates != 1 || c.Deletes != 1 || c.FailedDeletes != 1 {
		t.Fatalf("calls %+v", c)
	}
}

func TestStripeWebhookEndpoints(t *testing.T) {
	fp := fakeprovider.New(fakeprovider.Options{})
	srv := httptest.NewServer(fp.Handler())
	t.Cleanup(srv.Close)
	form := url.Values{"url": {"https://sb.example/v1/hooks/p/stripe/t"}, "enabled_events[]": {"customer.created"}, "metadata[c]": {"c1"}}
	create := func(key string, f url.Values) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/webhook_endpoints", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+key)
		return call(t, req)
	}
	if s, _ := create("pk_x", form); s != 401 {
		t.Fatalf("publishable key: %d", s)
	}
	if s, b := create("sk_test_1", url.Values{"url": {"https://x"}}); s != 400 || b["error"].(map[string]any)["code"] != "parameter_missing" {
		t.Fatalf("no events: %d %v", s, b)
	}
	fp.FailSubscriptions("create", 500, 1)
	if s, _ := create("sk_test_1", form); s != 500 {
		t.Fatalf("injected: %d", s)
	}
	s, b := create("sk_test_1", form)
	if s != 200 || !strings.HasPrefix(b["id"].(string), "we_") || !strings.HasPrefix(b["secret"].(string), "whsec_") {
		t.Fatalf("create: %d %v", s, b)
	}
	id := b["id"].(string)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/webhook_endpoints", nil)
	req.Header.Set("Authorization", "Bearer sk_test_1")
	if s, l := call(t, req); s != 200 || len(l["data"].([]any)) != 1 || l["data"].([]any)[0].(map[string]any)["secret"] != nil {
		t.Fatalf("list: %d %v", s, l)
	}
	for _, tt := range []struct {
		key  string
		want int
	}{{"sk_test_2", 404}, {"sk_test_1", 200}, {"sk_test_1", 404}} {
		req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v1/webhook_endpoints/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+tt.key)
		if s, b := call(t, req); s != tt.want {
			t.Fatalf("delete as %s: %d %v", tt.key, s, b)
		}
	}
	if len(fp.Subscriptions()) != 0 {
		t.Fatal("still listed")
	}
}

func TestClickUpWebhooks(t *testing.T) {
	fp := fakeprovider.New(fakeprovider.Options{})
	srv := httptest.NewServer(fp.Handler())
	t.Cleanup(srv.Close)
	var sig string
	var got []byte
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig, got = r.Header.Get("X-Signature"), nil
		got, _ = io.ReadAll(r.Body)
	}))
	t.Cleanup(target.Close)
	create := func(token, body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/team/9001/webhook", strings.NewReader(body))
		req.Header.Set("Authorization", token)
		return call(t, req)
	}
	if s, b := create("nope", `{"endpoint":"`+target.URL+`","events":["taskCreated"]}`); s != 401 || b["ECODE"] != "OAUTH_025" {
		t.Fatalf("bad token: %d %v", s, b)
	}
	if s, _ := create("pk_1", `{"endpoint":"`+target.URL+`","events":[]}`); s != 400 {
		t.Fatalf("no events: %d", s)
	}
	s, b := create("pk_1", `{"endpoint":"`+target.URL+`","events":["taskCreated"]}`)
	wh, _ := b["webhook"].(map[string]any)
	if s != 200 || b["id"] == "" || wh["secret"] == "" || wh["id"] != b["id"] {
		t.Fatalf("create: %d %v", s, b)
	}
	id, secret := b["id"].(string), wh["secret"].(string)
	if status, _, err := fp.Deliver(t.Context(), id); err != nil || status != 200 {
		t.Fatalf("deliver: %d %v", status, err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(got)
	if sig != hex.EncodeToString(mac.Sum(nil)) || !strings.Contains(string(got), `"event":"taskCreated"`) {
		t.Fatalf("delivery %s signed %q", got, sig)
	}
	for _, want := range []int{200, 404} {
		req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/api/v2/webhook/"+id, nil)
		req.Header.Set("Authorization", "pk_1")
		if s, b := call(t, req); s != want {
			t.Fatalf("delete: %d %v, want %d", s, b, want)
		}
	}
}
