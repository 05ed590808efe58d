package directory_test

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/broker/brokertest"
	"github.com/switchboard-hq/switchboard/pkg/directory"
)

func TestImport(t *testing.T) {
	d := brokertest.Directory(t, brokertest.Start(t).JS)
	ctx := ctxT(t)
	long := `{"id":"long","metadata":{"x":"` + strings.Repeat("a", 3000) + `"}}`
	lines := []string{
		`{"id":"u1","metadata":{"timezone":"Europe/Berlin"},"credentials":[{"id":"c1","integration":"crm","providerAccountId":"a-1","secret":{"accessToken":"t1"},"settings":{"k":"v"}},{"id":"c2","integration":"crm"}]}`,
		``,
		`{"id":"u2"}` + "\r",
		`{"id":`,
		`{"id":"` + strings.Repeat("x", 201) + `"}`,
		`{"id":"u3","credentials":[{"id":"c1","integration":"ghost"}]}`,
		long,
		`[1,2]`,
		`{"id":"u4","credentials":[{"id":"c1","integration":"crm"},{"id":"c1","integration":"crm"}]}`,
		`{"id":"u5","credentials":[{"id":"c1","integration":"crm","secret":"nope"}]}`,
		`{"id":"u6","credentials":[{"id":"c1","integration":"crm"}]}`,
	}
	var calls atomic.Int64
	res, err := d.Import(ctx, "acme", strings.NewReader(strings.Join(lines, "\n")), directory.ImportOptions{
		IntegrationExists: func(id string) bool { return id == "crm" },
		MaxLineBytes:      2048,
		Concurrency:       3,
		Progress:          func(directory.ImportProgress) { calls.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Users != 3 || res.Credentials != 3 || res.Lines != len(lines) || res.Truncated {
		t.Errorf("result = %+v", res)
	}
	got := map[int]string{}
	for _, e := range res.Errors {
		got[e.Line] = e.Code + " " + e.Field
	}
	want := map[int]string{
		4:  "invalid_json ",
		5:  "invalid_id id",
		6:  "unknown_integration credentials[0].integration",
		7:  "line_too_long ",
		8:  "invalid_json ",
		9:  "invalid_field credentials[1].id",
		10: "invalid_field credentials[0].secret",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %v\nwant     %v", got, want)
	}
	if n := calls.Load(); n != int64(len(lines)-1) { // every line but the blank one
		t.Errorf("progress called %d times", n)
	}
	u, err := d.User(ctx, "acme", "u1")
	if err != nil || u.Metadata["timezone"] != "Europe/Berlin" {
		t.Fatalf("u1 = %+v, %v", u, err)
	}
	if s, err := d.Secret(ctx, "acme", "u1", "c1"); err != nil || s["accessToken"] != "t1" {
		t.Errorf("secret = %v, %v", s, err)
	}
	if got, _ := d.CredentialsByAccount(ctx, "acme", "crm", "a-1"); len(got) != 1 || got[0].ID != "c1" {
		t.Errorf("by account = %v", got)
	}
	for _, id := range []string{"u3", "u4", "long"} {
		if _, err := d.User(ctx, "acme", id); !errors.Is(err, directory.ErrNotFound) {
			t.Errorf("user %s of a bad line exists: %v", id, err)
		}
	}
	// Importing again updates in place: the listed credential changes,
	// the unlisted one stays, metadata is kept when absent.
	res, err = d.Import(ctx, "acme", strings.NewReader(`{"id":"u1","credentials":[{"id":"c2","integration":"crm","providerAccountId":"a-2"}]}`), directory.ImportOptions{})
	if err != nil || res.Users != 1 || len(res.Errors) != 0 {
		t.Fatalf("second import = %+v, %v", res, err)
	}
	crs, _ := d.Credentials(ctx, "acme", "u1")
	if len(crs) != 2 || crs[1].ProviderAccountID != "a-2" || !crs[0].HasSecret {
		t.Errorf("credentials after re-import = %+v", crs)
	}
	if u, _ := d.User(ctx, "acme", "u1"); u.Metadata["timezone"] != "Europe/Berlin" {
		t.Errorf("metadata lost: %+v", u)
	}
	// A credential of another integration is an error, not a silent move.
	res, _ = d.Import(ctx, "acme", strings.NewReader(`{"id":"u1","credentials":[{"id":"c2","integration":"slack"}]}`), directory.ImportOptions{})
	if len(res.Errors) != 1 || res.Errors[0].Code != "integration_mismatch" {
		t.Errorf("mismatch import = %+v", res)
	}
	assertIndexExact(t, d, "acme")
}

func TestImportKeepsAtMostMaxErrors(t *testing.T) {
	d := brokertest.Directory(t, brokertest.Start(t).JS)
	body := strings.Repeat("not json\n", 10) + `{"id":"ok"}` + "\n"
	res, err := d.Import(ctxT(t), "acme", strings.NewReader(body), directory.ImportOptions{MaxErrors: 3})
	if err != nil || len(res.Errors) != 3 || res.ErrorCount != 10 || !res.Truncated || res.Users != 1 {
		t.Fatalf("result = %+v, %v", res, err)
	}
}

type failingReader struct{ after io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.after.Read(p)
	if err == io.EOF {
		return n, errors.New("connection reset")
	}
	return n, err
}

func TestImportReadError(t *testing.T) {
	d := brokertest.Directory(t, brokertest.Start(t).JS)
	res, err := d.Import(ctxT(t), "acme", failingReader{strings.NewReader(`{"id":"a"}` + "\n" + `{"id":"b"}` + "\n")}, directory.ImportOptions{})
	if err == nil || res.Users != 2 {
		t.Fatalf("result = %+v, %v", res, err)
	}
}

// ndjson streams n generated users with creds credentials each.
func ndjson(n, creds int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		zones := []string{"Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", ""}
		for i := range n {
			var b strings.Builder
			fmt.Fprintf(&b, `{"id":"user-%07d","metadata":{"timezone":%q,"plan":"pro"},"credentials":[`, i, zones[i%len(zones)])
			for c := range creds {
				if c > 0 {
					b.WriteByte(',')
				}
				integ := []string{"crm", "slack"}[c%2]
				fmt.Fprintf(&b, `{"id":"cred-%d","integration":%q,"providerAccountId":"acct-%07d-%d","secret":{"accessToken":"tok-%07d-%d"},"settings":{"pipeline":"default"}}`, c, integ, i, c, i, c)
			}
			b.WriteString("]}\n")
			if _, err := io.WriteString(pw, b.String()); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return pr
}
