package reqbody

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

type part struct {
	name, filename, ct string
	data               []byte
}

// buildMultipart returns a body and its Content-Type.
func buildMultipart(t testing.TB, parts ...part) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		var (
			pw  interface{ Write([]byte) (int, error) }
			err error
		)
		switch {
		case p.filename != "" && p.ct != "":
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.filename))
			h.Set("Content-Type", p.ct)
			pw, err = w.CreatePart(h)
		case p.filename != "":
			pw, err = w.CreateFormFile(p.name, p.filename)
		default:
			pw, err = w.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pw.Write(p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		body string
		want any
	}{
		{"json object", "application/json", `{"a":1,"b":[true,"x"],"c":{"d":null}}`,
			map[string]any{"a": 1.0, "b": []any{true, "x"}, "c": map[string]any{"d": nil}}},
		{"json with charset and case", "Application/JSON; charset=utf-8", `[1,2]`, []any{1.0, 2.0}},
		{"json suffix", "application/vnd.api+json", `"s"`, "s"},
		{"json bad params still json", "application/json; charset", `true`, true},
		{"json empty", "application/json", "", nil},
		{"json whitespace", "application/json", " \n\t", nil},
		{"json scalar number", "application/json", `12.5`, 12.5},
		{"form", "application/x-www-form-urlencoded", "a=1&b=x&b=y&c=&d=%20e",
			map[string]any{"a": "1", "b": []any{"x", "y"}, "c": "", "d": " e"}},
		{"form empty", "application/x-www-form-urlencoded", "", map[string]any{}},
		{"text", "text/plain", "hello", "hello"},
		{"xml", "application/xml", "<a/>", "<a/>"},
		{"none", "", "raw", "raw"},
		{"garbage content type", ";;;", "raw", "raw"},
		{"multipart mixed is text", "multipart/mixed; boundary=x", "--x--", "--x--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.ct, []byte(tt.body), Limits{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseMultipart(t *testing.T) {
	bin := []byte{0, 1, 2, 0xff, 'x'}
	body, ct := buildMultipart(t,
		part{name: "title", data: []byte("hi")},
		part{name: "tag", data: []byte("a")},
		part{name: "tag", data: []byte("b")},
		part{name: "doc", filename: "a.bin", ct: "image/png", data: bin},
		part{name: "plain", filename: "b.txt", data: []byte("text file")},
		part{name: "many", filename: "1.txt", ct: "text/plain", data: []byte("1")},
		part{name: "many", filename: "2.txt", ct: "text/plain", data: []byte("22")},
		part{name: "empty", filename: "e.txt", ct: "text/plain"},
	)
	got, err := Parse(ct, body, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"title": "hi",
		"tag":   []any{"a", "b"},
		"doc": map[string]any{"name": "a.bin", "mimeType": "image/png", "size": int64(5),
			"data": base64.StdEncoding.EncodeToString(bin)},
		"plain": map[string]any{"name": "b.txt", "mimeType": "application/octet-stream", "size": int64(9),
			"data": base64.StdEncoding.EncodeToString([]byte("text file"))},
		"many": []any{
			map[string]any{"name": "1.txt", "mimeType": "text/plain", "size": int64(1), "data": "MQ=="},
			map[string]any{"name": "2.txt", "mimeType": "text/plain", "size": int64(2), "data": "MjI="},
		},
		"empty": map[string]any{"name": "e.txt", "mimeType": "text/plain", "size": int64(0), "data": ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
	// The data decodes back to the bytes sent.
	dec, err := base64.StdEncoding.DecodeString(got.(map[string]any)["doc"].(map[string]any)["data"].(string))
	if err != nil || !bytes.Equal(dec, bin) {
		t.Fatalf("round trip: %v %v", dec, err)
	}

	t.Run("empty body", func(t *testing.T) {
		got, err := Parse("multipart/form-data; boundary=x", nil, Limits{})
		if err != nil || !reflect.DeepEqual(got, map[string]any{}) {
			t.Fatalf("got %#v, %v", got, err)
		}
	})
	t.Run("part without a name is skipped", func(t *testing.T) {
		body := "--x\r\nContent-Disposition: attachment\r\n\r\nzzz\r\n--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n"
		got, err := Parse("multipart/form-data; boundary=x", []byte(body), Limits{})
		if err != nil || !reflect.DeepEqual(got, map[string]any{"a": "1"}) {
			t.Fatalf("got %#v, %v", got, err)
		}
	})
}

func TestParseLimits(t *testing.T) {
	many := make([]part, 5)
	for i := range many {
		many[i] = part{name: fmt.Sprintf("f%d", i), data: []byte("v")}
	}
	manyBody, manyCT := buildMultipart(t, many...)
	bigBody, bigCT := buildMultipart(t, part{name: "f", filename: "big.bin", data: bytes.Repeat([]byte("a"), 101)})
	exactBody, exactCT := buildMultipart(t, part{name: "f", filename: "ok.bin", data: bytes.Repeat([]byte("a"), 100)})
	totalBody, totalCT := buildMultipart(t,
		part{name: "a", data: bytes.Repeat([]byte("a"), 80)},
		part{name: "b", data: bytes.Repeat([]byte("b"), 80)},
	)
	tests := []struct {
		name    string
		ct      string
		body    []byte
		lim     Limits
		wantErr error
		msg     string
	}{
		{"too many parts", manyCT, manyBody, Limits{MaxParts: 4}, ErrTooLarge, "more than 4 multipart parts"},
		{"parts at the limit", manyCT, manyBody, Limits{MaxParts: 5}, nil, ""},
		{"too large part", bigCT, bigBody, Limits{MaxPartBytes: 100}, ErrTooLarge, "larger than 100 bytes"},
		{"part at the limit", exactCT, exactBody, Limits{MaxPartBytes: 100}, nil, ""},
		{"total too large", totalCT, totalBody, Limits{MaxMemory: 150}, ErrTooLarge, "total more than 150 bytes"},
		{"total at the limit", totalCT, totalBody, Limits{MaxMemory: 160}, nil, ""},
		{"defaults", manyCT, manyBody, Limits{}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.ct, tt.body, tt.lim)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %q does not say %q", err, tt.msg)
			}
		})
	}
	t.Run("default part count", func(t *testing.T) {
		parts := make([]part, DefaultMaxParts+1)
		for i := range parts {
			parts[i] = part{name: "f", data: []byte("v")}
		}
		body, ct := buildMultipart(t, parts...)
		if _, err := Parse(ct, body, Limits{}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParseMalformed(t *testing.T) {
	good, goodCT := buildMultipart(t, part{name: "a", data: []byte("1")})
	tests := []struct {
		name string
		ct   string
		body string
	}{
		{"json syntax", "application/json", `{"a":`},
		{"json trailing", "application/json", `{} {}`},
		{"json suffix syntax", "application/problem+json", `nope`},
		{"form bad escape", "application/x-www-form-urlencoded", "a=%zz"},
		{"form semicolon", "application/x-www-form-urlencoded", "a=1;b=2"},
		{"multipart no boundary", "multipart/form-data", string(good)},
		{"multipart wrong boundary", "multipart/form-data; boundary=other", string(good)},
		{"multipart truncated", goodCT, string(good[:len(good)-10])},
		{"multipart garbage", "multipart/form-data; boundary=x", "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.ct, []byte(tt.body), Limits{})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %#v, err %v; want ErrMalformed", got, err)
			}
		})
	}
}

func TestTyped(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                  true,
		"APPLICATION/JSON; charset=utf-8":   true,
		"application/ld+json":               true,
		"application/x-www-form-urlencoded": true,
		"multipart/form-data; boundary=x":   true,
		"text/plain":                        false,
		"application/xml":                   false,
		"":                                  false,
		"+json":                             false,
		"multipart/mixed":                   false,
	} {
		t.Run(ct, func(t *testing.T) {
			if got := Typed(ct); got != want {
				t.Fatalf("Typed(%q) = %v", ct, got)
			}
		})
	}
}

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	v, err := Parse("application/json", []byte(s), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidate(t *testing.T) {
	typed := &workflow.RequestValidation{Body: []workflow.BodyRule{
		{Key: "s", Type: "string"},
		{Key: "n", Type: "number"},
		{Key: "b", Type: "boolean"},
		{Key: "o", Type: "object"},
		{Key: "a", Type: "array"},
	}}
	wrongTypes := `{"s":1,"n":"1","b":"true","o":[],"a":{}}`
	tests := []struct {
		name    string
		spec    *workflow.RequestValidation
		headers http.Header
		query   string
		body    string // JSON; "" means a nil body
		want    []FieldError
	}{
		{name: "nil spec", spec: nil},
		{name: "required query missing",
			spec: &workflow.RequestValidation{Query: []workflow.QueryRule{{Key: "id", Required: true}}},
			want: []FieldError{{Field: "query.id", Code: "required"}}},
		{name: "required query empty",
			spec:  &workflow.RequestValidation{Query: []workflow.QueryRule{{Key: "id", Required: true}}},
			query: "id=",
			want:  []FieldError{{Field: "query.id", Code: "required"}}},
		{name: "required query present",
			spec:  &workflow.RequestValidation{Query: []workflow.QueryRule{{Key: "id", Required: true}, {Key: "opt"}}},
			query: "id=7"},
		{name: "required header missing",
			spec: &workflow.RequestValidation{Headers: []workflow.HeaderRule{{Key: "X-Event", Required: true}}},
			want: []FieldError{{Field: "headers.x-event", Code: "required"}}},
		{name: "required header present any case",
			spec:    &workflow.RequestValidation{Headers: []workflow.HeaderRule{{Key: "x-EVENT", Required: true}}},
			headers: http.Header{"X-Event": {"push"}}},
		{name: "header in lower-cased map",
			spec:    &workflow.RequestValidation{Headers: []workflow.HeaderRule{{Key: "X-Event", Required: true, Equals: "push"}}},
			headers: http.Header{"x-event": {"push"}}},
		{name: "header equals mismatch",
			spec:    &workflow.RequestValidation{Headers: []workflow.HeaderRule{{Key: "X-Event", Equals: "push"}}},
			headers: http.Header{"X-Event": {"Push"}},
			want:    []FieldError{{Field: "headers.x-event", Code: "mismatch"}}},
		{name: "header equals one of repeated values mismatches",
			spec:    &workflow.RequestValidation{Headers: []workflow.HeaderRule{{Key: "X-Event", Equals: "push"}}},
			headers: http.Header{"X-Event": {"push", "pull"}},
			want:    []FieldError{{Field: "headers.x-event", Code: "mismatch"}}},
		{name: "header equals absent and optional",
			spec: &workflow.RequestValidation{Headers: []workflow.HeaderRule{{Key: "X-Event", Equals: "push"}}}},
		{name: "header equals absent and required",
			spec: &workflow.RequestValidation{Headers: []workflow.HeaderRule{{Key: "X-Event", Equals: "push", Required: true}}},
			want: []FieldError{{Field: "headers.x-event", Code: "required"}}},
		{name: "body field missing",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "email", Type: "string", Required: true}}},
			body: `{"name":"x"}`,
			want: []FieldError{{Field: "body.email", Code: "required"}}},
		{name: "body field null counts as missing",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "email", Type: "string", Required: true}}},
			body: `{"email":null}`,
			want: []FieldError{{Field: "body.email", Code: "required"}}},
		{name: "body nil",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "email", Required: true}}},
			want: []FieldError{{Field: "body.email", Code: "required"}}},
		{name: "body optional missing ok",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "email", Type: "string"}}},
			body: `{}`},
		{name: "every type right", spec: typed,
			body: `{"s":"x","n":1.5,"b":false,"o":{},"a":[]}`},
		{name: "every type wrong", spec: typed, body: wrongTypes,
			want: []FieldError{
				{Field: "body.s", Code: "type"}, {Field: "body.n", Code: "type"}, {Field: "body.b", Code: "type"},
				{Field: "body.o", Code: "type"}, {Field: "body.a", Code: "type"},
			}},
		{name: "nested dotted path ok",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "customer.email", Type: "string", Required: true}}},
			body: `{"customer":{"email":"a@b"}}`},
		{name: "nested dotted path missing",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "customer.email", Type: "string", Required: true}}},
			body: `{"customer":{"name":"a"}}`,
			want: []FieldError{{Field: "body.customer.email", Code: "required"}}},
		{name: "nested dotted path through a non-object",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "customer.email", Required: true}}},
			body: `{"customer":"a@b"}`,
			want: []FieldError{{Field: "body.customer.email", Code: "required"}}},
		{name: "nested wrong type",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "customer.age", Type: "number"}}},
			body: `{"customer":{"age":"old"}}`,
			want: []FieldError{{Field: "body.customer.age", Code: "type"}}},
		{name: "array index in path",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "items.1.id", Type: "number", Required: true}, {Key: "items.5.id", Required: true}}},
			body: `{"items":[{"id":1},{"id":2}]}`,
			want: []FieldError{{Field: "body.items.5.id", Code: "required"}}},
		{name: "undeclared fields are not reported",
			spec: &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "a", Type: "string"}}},
			body: `{"a":"x","extra":1}`},
		{name: "multiple errors at once, all listed",
			spec: &workflow.RequestValidation{
				Query:   []workflow.QueryRule{{Key: "id", Required: true}},
				Headers: []workflow.HeaderRule{{Key: "X-Sig", Required: true}, {Key: "X-Event", Equals: "push"}},
				Body:    []workflow.BodyRule{{Key: "email", Required: true}, {Key: "n", Type: "number"}, {Key: "c.d", Type: "boolean", Required: true}},
			},
			headers: http.Header{"X-Event": {"pull"}},
			body:    `{"n":"x","c":{"d":1}}`,
			want: []FieldError{
				{Field: "query.id", Code: "required"},
				{Field: "headers.x-sig", Code: "required"},
				{Field: "headers.x-event", Code: "mismatch"},
				{Field: "body.email", Code: "required"},
				{Field: "body.n", Code: "type"},
				{Field: "body.c.d", Code: "type"},
			}},
		{name: "allow arbitrary payload skips body rules only",
			spec: &workflow.RequestValidation{
				AllowArbitraryPayload: true,
				Query:                 []workflow.QueryRule{{Key: "id", Required: true}},
				Body:                  []workflow.BodyRule{{Key: "email", Type: "string", Required: true}},
			},
			body: `[1,2,3]`,
			want: []FieldError{{Field: "query.id", Code: "required"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = mustJSON(t, tt.body)
			}
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got := Validate(tt.spec, "POST", tt.headers, q, body)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors %+v, want %+v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i].Field != tt.want[i].Field || got[i].Code != tt.want[i].Code {
					t.Errorf("error %d = %+v, want %+v", i, got[i], tt.want[i])
				}
				if got[i].Message == "" {
					t.Errorf("error %d has no message", i)
				}
			}
		})
	}
}

func TestValidateMessages(t *testing.T) {
	spec := &workflow.RequestValidation{
		Headers: []workflow.HeaderRule{{Key: "X-Token", Equals: "s3cret"}},
		Body:    []workflow.BodyRule{{Key: "o", Type: "object"}},
	}
	got := Validate(spec, "POST", http.Header{"X-Token": {"guess"}}, nil, map[string]any{"o": "x"})
	if len(got) != 2 {
		t.Fatalf("%+v", got)
	}
	if strings.Contains(got[0].Message, "s3cret") {
		t.Errorf("mismatch message leaks the expected value: %q", got[0].Message)
	}
	if got[1].Message != `body field "o" must be an object, not a string` {
		t.Errorf("type message = %q", got[1].Message)
	}
}

func TestValidateFormAndMultipartBodies(t *testing.T) {
	spec := &workflow.RequestValidation{Body: []workflow.BodyRule{
		{Key: "name", Type: "string", Required: true},
		{Key: "tags", Type: "array"},
		{Key: "file", Type: "object", Required: true},
		{Key: "file.size", Type: "number"},
	}}
	body, ct := buildMultipart(t,
		part{name: "name", data: []byte("x")},
		part{name: "tags", data: []byte("a")},
		part{name: "tags", data: []byte("b")},
		part{name: "file", filename: "f.txt", data: []byte("abc")},
	)
	v, err := Parse(ct, body, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if errs := Validate(spec, "POST", nil, nil, v); errs != nil {
		t.Fatalf("multipart: %+v", errs)
	}
	form, _ := Parse("application/x-www-form-urlencoded", []byte("name=x"), Limits{})
	errs := Validate(spec, "POST", nil, nil, form)
	if len(errs) != 1 || errs[0].Field != "body.file" {
		t.Fatalf("form: %+v", errs)
	}
}

func TestValidateNumberKinds(t *testing.T) {
	spec := &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "n", Type: "number"}}}
	for _, v := range []any{1.0, float32(1), 1, int64(1), uint8(1), json.Number("1")} {
		t.Run(fmt.Sprintf("%T", v), func(t *testing.T) {
			if errs := Validate(spec, "POST", nil, nil, map[string]any{"n": v}); errs != nil {
				t.Fatalf("%+v", errs)
			}
		})
	}
}

func TestCheckMediaType(t *testing.T) {
	withBody := &workflow.RequestValidation{Body: []workflow.BodyRule{{Key: "a", Required: true}}}
	tests := []struct {
		name string
		spec *workflow.RequestValidation
		ct   string
		n    int
		want error
	}{
		{"text body with body rules", withBody, "text/plain", 5, ErrUnsupportedMediaType},
		{"xml body with body rules", withBody, "application/xml; charset=utf-8", 5, ErrUnsupportedMediaType},
		{"no content type with body rules", withBody, "", 5, ErrUnsupportedMediaType},
		{"json with body rules", withBody, "application/json", 5, nil},
		{"form with body rules", withBody, "application/x-www-form-urlencoded", 5, nil},
		{"multipart with body rules", withBody, "multipart/form-data; boundary=x", 5, nil},
		{"empty body", withBody, "text/plain", 0, nil},
		{"no body rules", &workflow.RequestValidation{Query: []workflow.QueryRule{{Key: "q"}}}, "text/plain", 5, nil},
		{"arbitrary payload", &workflow.RequestValidation{AllowArbitraryPayload: true, Body: withBody.Body}, "text/plain", 5, nil},
		{"nil spec", nil, "text/plain", 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckMediaType(tt.spec, tt.ct, tt.n)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestToProtoAndEnv(t *testing.T) {
	body := []byte(`{"customer":{"email":"a@b"}}`)
	r := httptest.NewRequest("PUT", "http://sb.example/v1/projects/p/workflows/w/trigger?x=1&y=2&y=3", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer tok")
	r.Header.Set("Cookie", "session=abc")
	r.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	r.Header.Add("X-Multi", "a")
	r.Header.Add("X-Multi", "b")
	r.Header["x-lower"] = []string{"raw"} // non-canonical key
	r.Header.Set("X-Lower", "canon")

	p := ToProto(r, body)
	if p.Method != "PUT" || p.ContentType != "application/json" || !bytes.Equal(p.Body, body) {
		t.Fatalf("proto = %v", p)
	}
	for k := range p.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q not lower-cased", k)
		}
	}
	for _, h := range []string{"authorization", "cookie", "proxy-authorization"} {
		if _, ok := p.Headers[h]; ok {
			t.Errorf("credential header %q passed through", h)
		}
	}
	if got := p.Headers["x-multi"].GetValues(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("x-multi = %v", got)
	}
	if got := p.Headers["x-lower"].GetValues(); len(got) != 2 {
		t.Errorf("x-lower = %v (both spellings merged)", got)
	}
	if got := p.Headers["host"].GetValues(); !reflect.DeepEqual(got, []string{"sb.example"}) {
		t.Errorf("host = %v", got)
	}
	if got := p.Query["y"].GetValues(); !reflect.DeepEqual(got, []string{"2", "3"}) {
		t.Errorf("query y = %v", got)
	}

	env := Env(p, Limits{})
	if env["method"] != "PUT" {
		t.Errorf("method = %v", env["method"])
	}
	hs := env["headers"].(map[string]any)
	if hs["content-type"] != "application/json" || !reflect.DeepEqual(hs["x-multi"], []any{"a", "b"}) {
		t.Errorf("headers = %#v", hs)
	}
	if _, ok := hs["authorization"]; ok {
		t.Error("authorization reached the run")
	}
	q := env["query"].(map[string]any)
	if q["x"] != "1" || !reflect.DeepEqual(q["y"], []any{"2", "3"}) {
		t.Errorf("query = %#v", q)
	}
	if !reflect.DeepEqual(env["body"], map[string]any{"customer": map[string]any{"email": "a@b"}}) {
		t.Errorf("body = %#v", env["body"])
	}

	// Validate works on the envelope's (lower-cased) headers too.
	spec := &workflow.RequestValidation{Headers: []workflow.HeaderRule{{Key: "X-Multi", Required: true}}}
	if errs := Validate(spec, p.Method, Header(p), nil, env["body"]); errs != nil {
		t.Errorf("validate envelope headers: %+v", errs)
	}

	t.Run("malformed body is kept raw", func(t *testing.T) {
		p.Body = []byte(`{"broken`)
		if got := Env(p, Limits{})["body"]; got != `{"broken` {
			t.Fatalf("body = %#v", got)
		}
	})
	t.Run("nil request", func(t *testing.T) {
		env := Env(nil, Limits{})
		if env["body"] != "" || len(env["headers"].(map[string]any)) != 0 {
			t.Fatalf("env = %#v", env)
		}
	})
}
