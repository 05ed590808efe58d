package reqbody

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

var fuzzContentTypes = []string{
	"application/json",
	"application/vnd.x+json; charset=utf-8",
	"application/x-www-form-urlencoded",
	"multipart/form-data; boundary=b",
	"multipart/form-data; boundary=\"a b\"",
	"multipart/form-data",
	"text/plain",
	"",
	"application/json; charset",
}

func checkParseErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("unexpected error kind: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	mp, mpCT := buildMultipart(f,
		part{name: "a", data: []byte("1")},
		part{name: "f", filename: "x.bin", ct: "image/png", data: []byte{0, 1, 2}},
	)
	fuzzContentTypes = append(fuzzContentTypes, mpCT)
	seeds := []struct {
		ct   uint8
		body string
	}{
		{0, `{"a":[1,2,{"b":null}]}`}, {0, ``}, {0, `{`}, {1, `"x"`},
		{2, "a=1&a=2&b=%zz"}, {2, "a=1;b"},
		{3, "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--b--\r\n"},
		{4, "--a b\r\n\r\n--a b--"}, {5, "x"}, {6, "plain"}, {7, "\xff"},
		{uint8(len(fuzzContentTypes) - 1), string(mp)},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body), uint8(0))
		f.Add(s.ct, []byte(s.body), uint8(2))
	}
	f.Fuzz(func(t *testing.T, ctIdx uint8, body []byte, small uint8) {
		ct := fuzzContentTypes[int(ctIdx)%len(fuzzContentTypes)]
		lim := Limits{}
		if small%2 == 0 {
			lim = Limits{MaxParts: 3, MaxPartBytes: 64, MaxMemory: 128}
		}
		v, err := Parse(ct, body, lim)
		checkParseErr(t, err)
		if err != nil {
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("result does not marshal: %v (%#v)", err, v)
		}
		if !Typed(ct) {
			if s, ok := v.(string); !ok || s != string(body) {
				t.Fatalf("untyped body not kept as the raw string: %#v", v)
			}
		}
		// Env never fails and always has the four keys.
		env := Env(ToProto(mustRequest(t, ct), body), lim)
		for _, k := range []string{"method", "headers", "query", "body"} {
			if _, ok := env[k]; !ok {
				t.Fatalf("env lacks %q", k)
			}
		}
	})
}

func mustRequest(t *testing.T, ct string) *http.Request {
	t.Helper()
	r, err := http.NewRequest("POST", "http://h/p?q=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", ct)
	r.Header.Set("Authorization", "Bearer x")
	return r
}

var fuzzTypes = []string{"", "string", "number", "boolean", "object", "array", "bogus"}

func FuzzValidate(f *testing.F) {
	for _, s := range []struct {
		body, key string
		typ       uint8
	}{
		{`{"customer":{"email":"a@b"}}`, "customer.email", 1},
		{`{"a":[{"b":1}]}`, "a.0.b", 2},
		{`{"a":true}`, "a", 3},
		{`{"a":{}}`, "a", 4},
		{`{"a":[]}`, "a", 5},
		{`[1,2]`, "0", 2},
		{`null`, "a", 0},
		{`"str"`, "a.b.c", 1},
		{`{"":{"":1}}`, ".", 2},
		{`{"a":1}`, "a.-1", 6},
		{`{`, "a", 1},
	} {
		f.Add([]byte(s.body), s.key, s.typ, true, "X-Event", "push")
		f.Add([]byte(s.body), s.key, s.typ, false, "", "")
	}
	f.Fuzz(func(t *testing.T, body []byte, key string, typ uint8, required bool, header, equals string) {
		v, err := Parse("application/json", body, Limits{})
		if err != nil {
			v = string(body)
		}
		spec := &workflow.RequestValidation{
			Query:   []workflow.QueryRule{{Key: key, Required: required}},
			Headers: []workflow.HeaderRule{{Key: header, Required: required, Equals: equals}},
			Body:    []workflow.BodyRule{{Key: key, Type: fuzzTypes[int(typ)%len(fuzzTypes)], Required: required}},
		}
		hdr := http.Header{}
		if header != "" {
			hdr[header] = []string{equals}
		}
		errs := Validate(spec, "POST", hdr, nil, v)
		for _, e := range errs {
			switch e.Code {
			case CodeRequired, CodeType, CodeMismatch:
			default:
				t.Fatalf("bad code %+v", e)
			}
			if e.Message == "" || !(strings.HasPrefix(e.Field, "query.") || strings.HasPrefix(e.Field, "headers.") || strings.HasPrefix(e.Field, "body.")) {
				t.Fatalf("bad field error %+v", e)
			}
			if !required && e.Code == CodeRequired {
				t.Fatalf("optional rule reported required: %+v", e)
			}
		}
		spec.AllowArbitraryPayload = true
		for _, e := range Validate(spec, "POST", hdr, nil, v) {
			if strings.HasPrefix(e.Field, "body.") {
				t.Fatalf("body checked despite allowArbitraryPayload: %+v", e)
			}
		}
		_ = CheckMediaType(spec, "text/plain", len(body))
	})
}

func FuzzMultipart(f *testing.F) {
	body, ct := buildMultipart(f,
		part{name: "a", data: []byte("1")},
		part{name: "a", data: []byte("2")},
		part{name: "f", filename: "x.txt", ct: "text/plain", data: []byte("hello")},
	)
	_, params, _ := mime.ParseMediaType(ct)
	f.Add(params["boundary"], body)
	f.Add("b", []byte("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n--b--\r\n"))
	f.Add("b", []byte("--b\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\na=3Db\r\n--b--\r\n"))
	f.Add("", []byte("--\r\n\r\n----"))
	f.Add("a b", []byte("--a b\r\n\r\n--a b--"))
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		ct := mime.FormatMediaType("multipart/form-data", map[string]string{"boundary": boundary})
		if ct == "" {
			ct = "multipart/form-data; boundary=" + boundary
		}
		lim := Limits{MaxParts: 4, MaxPartBytes: 256, MaxMemory: 512}
		v, err := Parse(ct, body, lim)
		checkParseErr(t, err)
		if err != nil {
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("multipart result is %T", v)
		}
		n := 0
		check := func(x any) {
			switch x := x.(type) {
			case string:
				n++
			case map[string]any:
				n++
				data, err := base64.StdEncoding.DecodeString(x["data"].(string))
				if err != nil || int64(len(data)) != x["size"].(int64) {
					t.Fatalf("file size/data disagree: %#v (%v)", x, err)
				}
				if len(data) > int(lim.MaxPartBytes) {
					t.Fatalf("part over the limit kept: %d bytes", len(data))
				}
			default:
				t.Fatalf("unexpected value %T", x)
			}
		}
		for _, x := range m {
			if list, ok := x.([]any); ok {
				if len(list) < 2 {
					t.Fatalf("repeated list with %d entries", len(list))
				}
				for _, y := range list {
					check(y)
				}
				continue
			}
			check(x)
		}
		if n > lim.MaxParts {
			t.Fatalf("%d values kept, limit %d parts", n, lim.MaxParts)
		}
	})
}
