package cli

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchboard-hq/switchboard/pkg/fakeprovider"
)

// newFakeProviderCmd runs pkg/fakeprovider: a local OAuth 2.0 provider that
// speaks the real wire format, for the connect walk-through in the README.
func newFakeProviderCmd() *cobra.Command {
	var addr, clientID, clientSecret, account string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "fake-provider",
		Short: "Run a local OAuth 2.0 provider (authorize, token, /me, /fake/revoke) and webhook subscription APIs for trying the connect flow",
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := fakeprovider.New(fakeprovider.Options{ClientID: clientID, ClientSecret: clientSecret, TokenTTL: ttl, Account: account})
			out := cmd.OutOrStdout()
			base := "http://" + addr
			fmt.Fprintf(out, "fake-provider listening on %s (client %s / %s, tokens for %s)\n", base, clientID, clientSecret, ttl)
			fmt.Fprintf(out, "  authorize %s/authorize  token %s/token  account %s/me\n", base, base, base)
			fmt.Fprintf(out, "  revoke an account's refresh tokens: curl -X POST %s/fake/revoke -d '{\"account\":\"%s\"}'\n", base, account)
			fmt.Fprintf(out, "  webhook subscriptions (Asana %s/api/1.0/webhooks, ClickUp %s/api/v2/team/{id}/webhook, Stripe %s/v1/webhook_endpoints): curl %s/fake/subscriptions; send one an event: curl -X POST %s/fake/deliver\n", base, base, base, base, base)
			fmt.Fprintf(out, "  list APIs for polling triggers (Salesforce, Drive, Pipedrive, Notion, Jira); add a record: curl -X POST %s/fake/records -d '{\"provider\":\"salesforce\",\"object\":\"Contact\",\"fields\":{\"Name\":\"Ada\"}}'\n", base)
			h := fakeprovider.WithLists(p.Handler(), fakeprovider.NewLists(fakeprovider.ListsOptions{}))
			srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
			return srv.ListenAndServe()
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:9100", "listen address")
	cmd.Flags().StringVar(&clientID, "client-id", "switchboard-dev", "the registered OAuth client id")
	cmd.Flags().StringVar(&clientSecret, "client-secret", "dev-secret", "the registered OAuth client secret")
	cmd.Flags().StringVar(&account, "account", "acct-1", "the provider account every authorization is for (until POST /fake/next-account)")
	cmd.Flags().DurationVar(&ttl, "token-ttl", time.Hour, "access token lifetime (expires_in)")
	return cmd
}
