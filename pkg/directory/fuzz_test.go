package directory_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/pkg/directory"
)

// FuzzParseImportLine: the import line parser never panics and either
// accepts a line or names a code for it.
func FuzzParseImportLine(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"id":"u"}`, `{"id":""}`, `{"id":1}`,
		`{"id":"u","metadata":{"timezone":"Europe/Berlin"},"credentials":[{"id":"c","integration":"crm","providerAccountId":"a","secret":{"t":"x"},"settings":{}}]}`,
		`{"id":"u","credentials":[{"id":"c","integration":"Bad Id"}]}`,
		`{"id":"u","credentials":[{"id":"c"}]}`, `{"id":"u","credentials":{}}`,
		`{"id":"u","credentials":[{"id":"c","integration":"crm","providerAccountId":7}]}`,
		`{"id":"u"} {"id":"v"}`, "\xff", `{"id":"` + strings.Repeat("é", 150) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		err := directory.ParseImportLine(line)
		if err == nil {
			if !utf8.Valid(line) {
				t.Fatalf("accepted invalid UTF-8 %q", line)
			}
			return
		}
		if ie, ok := err.(*directory.ImportError); !ok || ie.Code == "" || ie.Message == "" {
			t.Fatalf("error %#v for %q", err, line)
		}
	})
}
