package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/manifest"
	"github.com/switchboard-hq/switchboard/pkg/verify"
	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

func newWebhooksCmd() *cobra.Command {
	webhooks := &cobra.Command{Use: "webhooks", Short: "Provider webhooks: sign test deliveries"}
	var (
		integration, preset, secret, body, urlFlag, base, project, ctype, method, token string
		headers                                                                         []string
		at                                                                              int64
		curl                                                                            bool
	)
	sign := &cobra.Command{
		Use:   "sign --integration stripe --secret S --body @file.json",
		Short: "Print the headers a provider would send with this body (signed like the provider)",
		Long: `Signs a body the way the integration's provider does (its built-in manifest's
verification, or --preset), with pkg/verify's signer, and prints the headers to
send — or, with --curl, the whole curl command. Schemes that sign the URL
(HubSpot v2/v3, Twilio, Square) sign the webhook URL: --url, or the
receiver's default one built from --base, --project, --integration (and
--token for a per-credential URL). Headers the signed content reads (e.g.
webhook-id for Standard Webhooks) are passed with --header; a missing
webhook-id / svix-id is generated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readArg(body)
			if err != nil {
				return err
			}
			spec, err := signingSpec(integration, preset)
			if err != nil {
				return err
			}
			target := urlFlag
			if target == "" {
				target = strings.TrimRight(base, "/") + "/v1/hooks/" + project + "/" + integration
				if token != "" {
					target += "/" + token
				}
			}
			h := http.Header{}
			if ctype != "" {
				h.Set("Content-Type", ctype)
			}
			for _, kv := range headers {
				k, v, ok := strings.Cut(kv, ":")
				if !ok {
					return fmt.Errorf("--header %q: want Name: value", kv)
				}
				h.Set(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			fillIDHeaders(spec, h)
			s, err := verify.NewSigner(spec, verify.Options{})
			if err != nil {
				return fmt.Errorf("cannot sign for %s: %w", integration, err)
			}
			when := time.Now()
			if at != 0 {
				when = time.Unix(at, 0)
			}
			r := verify.Request{Method: strings.ToUpper(method), URL: target, Header: h, Body: data}
			if err := s.Sign(&r, verify.Secret{Value: secret}, when); err != nil {
				return err
			}
			printSigned(cmd.OutOrStdout(), r, body, curl)
			return nil
		},
	}
	f := sign.Flags()
	f.StringVar(&integration, "integration", "", "integration id (its built-in manifest's verification)")
	f.StringVar(&preset, "preset", "", "a pkg/verify preset instead of the integration's (for a project's own integration)")
	f.StringVar(&secret, "secret", "", "the signing secret")
	f.StringVar(&body, "body", "", "the body: @file, - for stdin, or the text itself")
	f.StringVar(&urlFlag, "url", "", "the webhook URL, for schemes that sign it (default: --base/v1/hooks/--project/--integration[/--token])")
	f.StringVar(&base, "base", envOr("SWITCHBOARD_URL", "http://127.0.0.1:8080"), "receiver base URL (SWITCHBOARD_URL)")
	f.StringVar(&project, "project", dev.Project, "project id")
	f.StringVar(&token, "token", "", "a credential's webhook token (per-credential URL)")
	f.StringVar(&ctype, "content-type", "application/json", "Content-Type of the body")
	f.StringVar(&method, "method", http.MethodPost, "HTTP method")
	f.StringArrayVar(&headers, "header", nil, "extra header 'Name: value' (repeatable), sent and available to the signed content")
	f.Int64Var(&at, "at", 0, "sign at this Unix time instead of now")
	f.BoolVar(&curl, "curl", false, "print a curl command instead of the headers")
	_ = sign.MarkFlagRequired("secret")
	_ = sign.MarkFlagRequired("body")
	webhooks.AddCommand(sign)
	return webhooks
}

// signingSpec is the verification spec to sign with: --preset, else the
// integration's built-in manifest's.
func signingSpec(integration, preset string) (verify.Spec, error) {
	if preset != "" {
		return verify.Spec{Preset: preset}, nil
	}
	if integration == "" {
		return verify.Spec{}, fmt.Errorf("--integration or --preset is required")
	}
	m, ok := manifest.Builtin(integration)
	if !ok || m.Webhook == nil || m.Webhook.Verification == nil {
		return verify.Spec{}, fmt.Errorf("%q is not a built-in webhook integration: pass --preset (or see docs/webhooks.md)", integration)
	}
	spec := *m.Webhook.Verification
	if m.Webhook.Handshake != nil {
		spec.Handshake = m.Webhook.Handshake
	}
	return spec, nil
}

var idHeader = regexp.MustCompile(`\{header:([^}]*-id[^}]*)\}`)

// fillIDHeaders generates a message id for a content that signs one
// (webhook-id, svix-id) when none was given.
func fillIDHeaders(spec verify.Spec, h http.Header) {
	content := spec.Content
	if spec.Preset != "" {
		if p, ok := verify.LookupPreset(spec.Preset); ok && content == "" {
			content = p.Spec.Content
		}
	}
	for _, m := range idHeader.FindAllStringSubmatch(content, -1) {
		names := strings.Split(m[1], "|")
		have := false
		for _, n := range names {
			if h.Get(n) != "" {
				have = true
			}
		}
		if !have {
			h.Set(names[0], fmt.Sprintf("msg_%d", time.Now().UnixNano()))
		}
	}
}

func printSigned(w io.Writer, r verify.Request, bodyArg string, curl bool) {
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	if !curl {
		for _, k := range names {
			fmt.Fprintf(w, "%s: %s\n", k, r.Header.Get(k))
		}
		return
	}
	fmt.Fprintf(w, "curl -sS -X %s %s", r.Method, shellQuote(r.URL))
	for _, k := range names {
		fmt.Fprintf(w, " \\\n  -H %s", shellQuote(k+": "+r.Header.Get(k)))
	}
	if strings.HasPrefix(bodyArg, "@") {
		// --data-binary sends the file's bytes unchanged: the signature is
		// over exactly those.
		fmt.Fprintf(w, " \\\n  --data-binary %s\n", shellQuote(bodyArg))
		return
	}
	fmt.Fprintf(w, " \\\n  --data-binary %s\n", shellQuote(string(r.Body)))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// readArg reads @file, - (stdin) or the literal text.
func readArg(v string) ([]byte, error) {
	switch {
	case v == "-":
		return io.ReadAll(os.Stdin)
	case strings.HasPrefix(v, "@"):
		return os.ReadFile(v[1:])
	}
	return []byte(v), nil
}
