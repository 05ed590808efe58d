// Package console is the run console: a small static web page, embedded in
// the binary, that the history role serves under /console. The page talks
// to the same origin's history API with the project API key the user
// pastes once (kept in the tab's sessionStorage and sent as a Bearer
// token), so the console needs no session state of its own on the server
// and sees exactly what the API would show the key.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var files embed.FS

// Path is where the console is mounted.
const Path = "/console"

// setSecurityHeaders keeps the page to its own scripts and API: it handles
// an API key, so no inline script, no third-party origin, no framing.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// The files are tiny; revalidating keeps a new binary's page current.
	h.Set("Cache-Control", "no-cache")
}

// Handler serves the console: Path itself is the page, Path+"/<file>" its
// assets. Anything else under Path is 404.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		// The embedded tree is fixed at build time; only a broken build
		// gets here.
		panic("console: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, Path), "/")
		if name == "" {
			name = "index.html"
		}
		if name != path.Clean(name) || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		setSecurityHeaders(w.Header())
		if _, err := fs.Stat(sub, name); err != nil {
			http.NotFound(w, r)
			return
		}
		http.ServeFileFS(w, r, sub, name)
	})
}
