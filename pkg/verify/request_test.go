package verify

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFromHTTP(t *testing.T) {
	hr := httptest.NewRequest("POST", "http://internal:8080/v1/hooks/p/twilio?foo=1&bar=2", strings.NewReader("a=b"))
	hr.Header.Set("X-Forwarded-Host", "evil.example") // never trusted
	for _, tc := range []struct{ base, want string }{
		{"https://hooks.example.com", "https://hooks.example.com/v1/hooks/p/twilio?foo=1&bar=2"},
		{"https://hooks.example.com/", "https://hooks.example.com/v1/hooks/p/twilio?foo=1&bar=2"},
		{"", "http://internal:8080/v1/hooks/p/twilio?foo=1&bar=2"},
	} {
		r := FromHTTP(hr, []byte("a=b"), tc.base)
		if r.URL != tc.want || r.Method != "POST" || string(r.Body) != "a=b" {
			t.Errorf("base %q: %+v", tc.base, r)
		}
	}
}
