package httpx

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"
)

func TestNormalizeOrigin(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "https://app.example.com", want: "https://app.example.com"},
		{in: "https://App.Example.com/", want: "https://app.example.com"},
		{in: "https://app.example.com:443", want: "https://app.example.com"},
		{in: "http://localhost:80", want: "http://localhost"},
		{in: "http://localhost:3000", want: "http://localhost:3000"},
		{in: "http://[::1]:3000", want: "http://[::1]:3000"},
		{in: "*", want: "*"},
		{in: "null", err: true},
		{in: "app.example.com", err: true},
		{in: "ftp://app.example.com", err: true},
		{in: "https://app.example.com/path", err: true},
		{in: "https://app.example.com?q=1", err: true},
		{in: "https://u:p@app.example.com", err: true},
		{in: "https://", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeOrigin(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("NormalizeOrigin(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeOrigin(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestOriginIn(t *testing.T) {
	allowed := []string{"https://app.example.com", "http://localhost:3000"}
	for _, tc := range []struct {
		origin  string
		allowed []string
		want    bool
	}{
		{"https://app.example.com", allowed, true},
		{"https://APP.example.com:443", allowed, true},
		{"http://app.example.com", allowed, false},
		{"http://localhost:3001", allowed, false},
		{"null", allowed, false},
		{"null", []string{"*"}, true},
		{"https://any.example", []string{"*"}, true},
		{"https://app.example.com", nil, false},
	} {
		t.Run(tc.origin+" in "+strings.Join(tc.allowed, ","), func(t *testing.T) {
			if got := OriginIn(tc.origin, tc.allowed); got != tc.want {
				t.Fatalf("OriginIn = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	e := NewEcho(slog.New(slog.DiscardHandler))
	cors := CORS(CORSOptions{
		Allowed: func(c *echo.Context, origin string) bool {
			return c.Param("p") == "open" && OriginIn(origin, []string{"https://app.example.com"})
		},
		Headers: []string{"Authorization", "Content-Type"},
		Expose:  []string{"X-Run"},
	})
	e.GET("/p/:p", func(c *echo.Context) error { return c.String(http.StatusOK, "ok") }, cors)
	e.OPTIONS("/p/:p", Preflight(http.MethodGet), cors)

	type want struct {
		status  int
		code    string // error code, if an error
		acao    string
		methods string
		headers []string
	}
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
		want               want
	}{
		{"preflight allowed", "OPTIONS", "/p/open",
			[]string{"Origin", "https://app.example.com", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "X-Custom, authorization"},
			want{status: 204, acao: "https://app.example.com", methods: "GET, POST, PATCH", headers: []string{"authorization", "content-type", "x-custom"}}},
		{"preflight other origin", "OPTIONS", "/p/open",
			[]string{"Origin", "https://evil.example", "Access-Control-Request-Method", "GET"},
			want{status: 403, code: "origin_not_allowed"}},
		{"preflight other project", "OPTIONS", "/p/closed",
			[]string{"Origin", "https://app.example.com", "Access-Control-Request-Method", "GET"},
			want{status: 403, code: "origin_not_allowed"}},
		{"preflight method not allowed", "OPTIONS", "/p/open",
			[]string{"Origin", "https://app.example.com", "Access-Control-Request-Method", "DELETE"},
			want{status: 405, code: "method_not_allowed", acao: "https://app.example.com", methods: "GET, POST, PATCH"}},
		{"preflight bad header name", "OPTIONS", "/p/open",
			[]string{"Origin", "https://app.example.com", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x a"},
			want{status: 400, code: "invalid_header", acao: "https://app.example.com"}},
		{"preflight without origin", "OPTIONS", "/p/open",
			[]string{"Access-Control-Request-Method", "GET"},
			want{status: 400, code: "missing_origin"}},
		{"plain OPTIONS", "OPTIONS", "/p/open", nil, want{status: 204}},
		{"request allowed", "GET", "/p/open", []string{"Origin", "https://app.example.com"},
			want{status: 200, acao: "https://app.example.com"}},
		{"request other origin", "GET", "/p/open", []string{"Origin", "https://evil.example"},
			want{status: 403, code: "origin_not_allowed"}},
		{"request without origin", "GET", "/p/closed", nil, want{status: 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			h := rec.Header()
			if rec.Code != tc.want.status {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tc.want.status)
			}
			if tc.want.code != "" {
				var body struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != tc.want.code || body.Error.Message == "" {
					t.Errorf("body %s, want error code %q with a message", rec.Body, tc.want.code)
				}
			}
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.want.acao {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.want.acao)
			}
			if got := h.Get("Access-Control-Allow-Methods"); got != tc.want.methods {
				t.Errorf("Access-Control-Allow-Methods %q, want %q", got, tc.want.methods)
			}
			if got := strings.Split(h.Get("Access-Control-Allow-Headers"), ", "); tc.want.headers != nil && !slices.Equal(got, tc.want.headers) {
				t.Errorf("Access-Control-Allow-Headers %q, want %q", got, tc.want.headers)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("Access-Control-Allow-Credentials is never sent")
			}
			if tc.want.status == 200 && tc.want.acao != "" && h.Get("Access-Control-Expose-Headers") != "X-Run" {
				t.Errorf("Access-Control-Expose-Headers %q, want X-Run", h.Get("Access-Control-Expose-Headers"))
			}
			if !slices.Contains(h.Values("Vary"), "Origin") {
				t.Errorf("Vary %v lacks Origin", h.Values("Vary"))
			}
		})
	}
}
