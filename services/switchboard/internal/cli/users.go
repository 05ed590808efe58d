package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	lifecycle "github.com/switchboard-hq/switchboard/services/connection-lifecycle"
	"github.com/switchboard-hq/switchboard/services/switchboard/client"
)

func newUsersCmd() *cobra.Command {
	users := &cobra.Command{Use: "users", Short: "Connected users"}
	var cf clientFlags
	var quiet bool
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Import connected users and credentials from an NDJSON file (one user per line; - reads stdin)",
		Long: `Import connected users and credentials in bulk. FILE holds one JSON object per line:

  {"id":"u1","metadata":{"timezone":"Europe/Berlin"},
   "credentials":[{"id":"c1","integration":"crm","providerAccountId":"acct-42",
                   "secret":{"accessToken":"…"},"settings":{}}]}

The file is streamed to POST /v1/projects/{p}/users/import; bad lines are
listed with their line numbers and the others are imported.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.importUsers(cmd.Context(), args[0], quiet, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cf.register(imp)
	imp.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	users.AddCommand(imp)
	return users
}

// importUsers streams path to the import endpoint with a progress bar by
// bytes sent, then prints the counts and every reported line error.
func (f *clientFlags) importUsers(ctx context.Context, path string, quiet bool, out, errOut io.Writer) error {
	api, err := f.api()
	if err != nil {
		return err
	}
	var body io.Reader
	size := int64(-1)
	if path == "-" {
		body = os.Stdin
	} else {
		file, err := os.Open(path)
		if err != nil {
			return err
		}
		defer file.Close()
		if st, err := file.Stat(); err == nil {
			size = st.Size()
		}
		body = file
	}
	var bar *progressbar.ProgressBar
	if !quiet {
		bar = progressbar.NewOptions64(size,
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionSetWriter(errOut),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowCount(),
			progressbar.OptionFullWidth(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(errOut) }),
		)
		r := progressbar.NewReader(body, bar)
		body = &r
	}
	// No overall timeout: a large import takes as long as it takes.
	res, err := api.ImportUsers(ctx, f.project, body, size)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		// An error answer may still say how far the import got.
		var ae *client.Error
		var got lifecycle.ImportResponse
		if errors.As(err, &ae) && len(ae.Details) > 0 && json.Unmarshal(ae.Details, &got) == nil {
			printImport(out, got)
		}
		return err
	}
	printImport(out, *res)
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d line(s) not imported", len(res.Errors))
	}
	return nil
}

func printImport(out io.Writer, res lifecycle.ImportResponse) {
	fmt.Fprintf(out, "imported %d users, %d credentials\n", res.Users, res.Credentials)
	for _, e := range res.Errors {
		field := ""
		if e.Field != "" {
			field = " (" + e.Field + ")"
		}
		fmt.Fprintf(out, "line %d: %s%s: %s\n", e.Line, e.Code, field, e.Message)
	}
	if res.Truncated {
		fmt.Fprintln(out, "… more lines failed than the server lists")
	}
}
