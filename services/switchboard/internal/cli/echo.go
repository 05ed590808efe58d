package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// newEchoServerCmd is a tiny local listener for the quick start: it prints
// every request it receives and answers with JSON, so a workflow's http step
// has something real to call.
func newEchoServerCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "echo-server",
		Short: "Run a local HTTP listener that prints each request and answers {\"received\":true,\"n\":N}",
		RunE: func(cmd *cobra.Command, _ []string) error {
			var n atomic.Int64
			out := cmd.OutOrStdout()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
				i := n.Add(1)
				fmt.Fprintf(out, "%s #%d %s %s auth=%q\n%s\n\n", time.Now().Format(time.TimeOnly), i, r.Method, r.URL, r.Header.Get("Authorization"), body)
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"received": true, "n": i})
			})
			fmt.Fprintf(out, "echo-server listening on http://%s\n", addr)
			srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
			return srv.ListenAndServe()
		},
	}
	cmd.Flags().StringVar(&addr, "addr", examplesListener(), "listen address (env "+examplesListenerEnv+"; the examples call it)")
	return cmd
}
