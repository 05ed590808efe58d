package manifest

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// MaxManifestBytes bounds one manifest document.
const MaxManifestBytes = 256 << 10

// Parse reads one manifest from YAML or JSON, strictly (an unknown field is
// an error, so a typo never turns a setting off), and compiles it.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, Problems{{Message: fmt.Sprintf("the manifest is larger than %d bytes", MaxManifestBytes)}}
	}
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, Problems{{Message: err.Error()}}
	}
	m := &Manifest{}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, Problems{{Message: strings.TrimPrefix(err.Error(), "json: ")}}
	}
	if p := m.Compile(); len(p) > 0 {
		return m, p
	}
	return m, nil
}

// yamlToJSON decodes one YAML document (JSON is YAML) into JSON, so that
// the strict JSON decoder and the verify types' JSON tags apply to both.
func yamlToJSON(data []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc any
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty manifest")
		}
		return nil, fmt.Errorf("invalid YAML/JSON: %v", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("one manifest per document")
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, errors.New("a manifest is a mapping")
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("cannot be encoded as JSON: %v", err)
	}
	return b, nil
}

//go:embed builtin/*.yaml
var builtinFS embed.FS

// builtins is the table of embedded manifests, parsed once on first use.
// It is never modified after that (Builtin hands out the shared, compiled
// values, which callers must not change).
var builtins = sync.OnceValues(func() (map[string]*Manifest, error) { return loadBuiltins(builtinFS) })

func loadBuiltins(fsys fs.FS) (map[string]*Manifest, error) {
	files, err := fs.Glob(fsys, "builtin/*.yaml")
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Manifest, len(files))
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		m, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("manifest: built-in %s: %w", f, err)
		}
		if want := strings.TrimSuffix(path.Base(f), ".yaml"); m.ID != want {
			return nil, fmt.Errorf("manifest: built-in %s has id %q", f, m.ID)
		}
		out[m.ID] = m
	}
	return out, nil
}

// Builtin returns the embedded manifest with id. The value is shared.
func Builtin(id string) (*Manifest, bool) {
	t, err := builtins()
	if err != nil {
		return nil, false
	}
	m, ok := t[id]
	return m, ok
}

// BuiltinIDs lists the embedded manifests' ids, sorted; the error is a
// broken embedded file (a test checks there is none).
func BuiltinIDs() ([]string, error) {
	t, err := builtins()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(t))
	for id := range t {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// Extend returns m with every part it leaves out taken from base: a
// project's manifest with a built-in's id overrides what it sets and keeps
// the rest (the webhook field by field, triggers by event, settings by key).
// Neither input is modified; the result must be compiled.
func (m *Manifest) Extend(base *Manifest) *Manifest {
	out := *m
	if out.Name == "" {
		out.Name = base.Name
	}
	if out.Auth.Type == "" {
		out.Auth = base.Auth
	}
	out.Resource = m.Resource || base.Resource
	switch {
	case m.Webhook == nil && base.Webhook != nil:
		w := *base.Webhook
		out.Webhook = &w
	case m.Webhook != nil && base.Webhook != nil:
		w, b := *m.Webhook, base.Webhook
		if w.Verification == nil {
			w.Verification = b.Verification
		}
		if w.Handshake == nil {
			w.Handshake = b.Handshake
		}
		if len(w.Methods) == 0 {
			w.Methods = b.Methods
		}
		for _, f := range []struct {
			dst *string
			src string
		}{
			{&w.AccountID, b.AccountID}, {&w.EventType, b.EventType}, {&w.EventID, b.EventID}, {&w.Split, b.Split},
		} {
			if *f.dst == "" {
				*f.dst = f.src
			}
		}
		if w.DedupeTTL == 0 {
			w.DedupeTTL = b.DedupeTTL
		}
		if w.Response == nil {
			w.Response = b.Response
		}
		out.Webhook = &w
	}
	out.Triggers = mergeBy(m.Triggers, base.Triggers, func(e Event) string { return e.Event })
	out.Settings = mergeBy(m.Settings, base.Settings, func(f Field) string { return f.Key })
	if out.OAuth == nil {
		out.OAuth = base.OAuth
	}
	out.Polling = mergeBy(m.Polling, base.Polling, func(q Poll) string { return q.Event })
	out.Subscription = m.Subscription.extend(base.Subscription)
	return &out
}

// mergeBy is base with over's entries replacing those of the same key and
// the others appended, as fresh slices.
func mergeBy[T any](over, base []T, key func(T) string) []T {
	if len(over) == 0 && len(base) == 0 {
		return nil
	}
	idx := map[string]int{}
	out := make([]T, 0, len(over)+len(base))
	for _, x := range base {
		idx[key(x)] = len(out)
		out = append(out, x)
	}
	for _, x := range over {
		if i, ok := idx[key(x)]; ok {
			out[i] = x
			continue
		}
		out = append(out, x)
	}
	return out
}
