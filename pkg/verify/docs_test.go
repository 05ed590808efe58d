package verify

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// presetTableMarkdown renders the preset table of docs/webhooks.md, so the
// document is generated from the code it describes:
//
//	SWITCHBOARD_PRINT_PRESETS=1 go test ./verify/ -run TestDocsListEveryPreset -v
func presetTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| preset | signature header(s) | scheme / algorithm | timestamp tolerance | handshake | tenant field (hint) | event id (hint) |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, p := range Presets() {
		s := p.Spec
		where := s.Header
		switch {
		case s.Scheme == "basic" || s.Scheme == "bearer" || (s.Scheme == "jwt" && where == ""):
			where = "Authorization"
		case where == "" && s.Field != "":
			where = "body " + s.Field
		}
		if s.Timestamp != nil && s.Timestamp.Header != "" {
			where += " + " + s.Timestamp.Header
		}
		if s.Format == "kv" {
			sep := s.Separator
			if sep == "" {
				sep = ","
			}
			where += " (" + s.TimestampKey + "=…" + sep + s.SignatureKey + "=…)"
		}
		if s.Format == "list" {
			where += " (\"" + s.SignatureKey + ",…\" list)"
		}
		if s.Timestamp != nil && s.Timestamp.Field != "" {
			where += " + body " + s.Timestamp.Field
		}
		alg := s.Algorithm
		if alg == "" {
			alg = "sha256"
		}
		enc := s.Encoding
		if enc == "" {
			enc = "hex"
		}
		scheme := s.Scheme
		if scheme == "" {
			scheme = "hmac"
		}
		algo := fmt.Sprintf("%s %s %s", scheme, alg, enc)
		switch scheme {
		case "token", "basic", "bearer":
			algo = scheme + " (constant-time compare)"
		case "jwt":
			algo = "jwt HS256"
		case "ed25519":
			algo = "ed25519 " + enc
		case "ecdsa":
			algo = "ecdsa P-256 " + alg + " " + enc
		case "hash":
			algo = "plain " + alg + " " + enc + " (secret in content)"
		}
		tol := "none"
		if s.Timestamp != nil {
			d := time.Duration(s.Timestamp.Tolerance)
			if d == 0 {
				d = defaultTolerance
			}
			tol = "±" + strings.TrimSuffix(d.String(), "0s") + " (" + unitName(s.Timestamp.Unit) + ")"
		} else if scheme == "jwt" {
			tol = "JWT exp (1 min leeway)"
		}
		hs := "–"
		if s.Handshake != nil {
			hs = s.Handshake.Type
		}
		cell := func(v string) string { return strings.ReplaceAll(v, "|", "\\|") }
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s |\n", p.Name, cell(where), algo, tol, hs, cell(p.TenantHint), cell(p.EventIDHint))
	}
	return b.String()
}

func unitName(u string) string {
	switch u {
	case "", "s":
		return "Unix s"
	case "ms":
		return "Unix ms"
	case "rfc3339":
		return "RFC 3339"
	}
	return "s or RFC 3339"
}

func TestDocsListEveryPreset(t *testing.T) {
	table := presetTableMarkdown()
	if os.Getenv("SWITCHBOARD_PRINT_PRESETS") != "" {
		fmt.Print(table)
	}
	doc, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	if !strings.Contains(string(doc), table) {
		t.Errorf("docs/webhooks.md's preset table is out of date; regenerate it with SWITCHBOARD_PRINT_PRESETS=1")
	}
}
