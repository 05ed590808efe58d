package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Object is one decoded, compiled document.
type Object interface {
	// DocKind is the document's kind.
	DocKind() string
	// DocName names the document in messages (its id or name).
	DocName() string
}

func (w *Workflow) DocKind() string     { return KindWorkflow }
func (w *Workflow) DocName() string     { return w.ID }
func (e *AppEvent) DocKind() string     { return KindAppEvent }
func (e *AppEvent) DocName() string     { return e.Name }
func (in *Integration) DocKind() string { return KindIntegration }
func (in *Integration) DocName() string { return in.ID }

// DocError is the outcome of one invalid document.
type DocError struct {
	Index    int      `json:"index"`
	Kind     string   `json:"kind,omitempty"`
	Name     string   `json:"name,omitempty"`
	Problems Problems `json:"problems"`
}

// ParseError lists every invalid document of an apply.
type ParseError struct {
	Docs []DocError
}

func (e *ParseError) Error() string {
	parts := make([]string, len(e.Docs))
	for i, d := range e.Docs {
		parts[i] = fmt.Sprintf("document %d (%s %s): %s", d.Index, d.Kind, d.Name, d.Problems.Error())
	}
	return strings.Join(parts, "\n")
}

// MaxDocuments bounds how many documents one apply may carry.
const MaxDocuments = 1000

// Parse decodes YAML (several documents separated by ---) or JSON (one
// object or an array of objects), then validates and compiles each document.
// defaultProject fills documents that omit project; a document naming another
// project is an error. Either every document is valid, or the returned
// *ParseError lists each invalid one.
func Parse(data []byte, defaultProject string) ([]Object, error) {
	raws, err := splitDocuments(data)
	if err != nil {
		return nil, &ParseError{Docs: []DocError{{Index: 0, Problems: Problems{{Message: err.Error()}}}}}
	}
	if len(raws) == 0 {
		return nil, &ParseError{Docs: []DocError{{Index: 0, Problems: Problems{{Message: "no documents"}}}}}
	}
	if len(raws) > MaxDocuments {
		return nil, &ParseError{Docs: []DocError{{Index: 0, Problems: Problems{{Message: fmt.Sprintf("at most %d documents per apply", MaxDocuments)}}}}}
	}
	var objs []Object
	var bad []DocError
	for i, raw := range raws {
		obj, de := decodeOne(raw, defaultProject)
		if de != nil {
			de.Index = i
			bad = append(bad, *de)
			continue
		}
		objs = append(objs, obj)
	}
	if len(bad) > 0 {
		return nil, &ParseError{Docs: bad}
	}
	return objs, nil
}

func splitDocuments(data []byte) ([]map[string]any, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var list []map[string]any
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, fmt.Errorf("invalid JSON: %v", err)
		}
		for i, m := range list {
			if m == nil {
				return nil, fmt.Errorf("document %d is not a mapping", i)
			}
		}
		return list, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []map[string]any
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("invalid YAML/JSON: %v", err)
		}
		if doc == nil {
			continue
		}
		m, ok := doc.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("document %d is not a mapping", len(out))
		}
		out = append(out, m)
	}
	return out, nil
}

func decodeOne(raw map[string]any, defaultProject string) (Object, *DocError) {
	kind, _ := raw["kind"].(string)
	de := &DocError{Kind: kind}
	if p, _ := raw["project"].(string); p == "" && defaultProject != "" {
		raw["project"] = defaultProject
	} else if defaultProject != "" && p != defaultProject {
		de.Problems.add("project", "document is for project %q, applied to %q", p, defaultProject)
		if n, _ := raw["id"].(string); n != "" {
			de.Name = n
		} else if n, _ := raw["name"].(string); n != "" {
			de.Name = n
		}
		return nil, de
	}
	b, err := json.Marshal(raw)
	if err != nil {
		de.Problems.add("", "cannot be encoded as JSON: %v", err)
		return nil, de
	}
	obj, err := Decode(kind, b)
	if obj != nil {
		de.Name = obj.DocName()
	}
	if err != nil {
		var p Problems
		if errors.As(err, &p) {
			de.Problems = p
		} else {
			de.Problems.add("", "%v", err)
		}
		return nil, de
	}
	return obj, nil
}

// Decode decodes one JSON document of kind and compiles it. Unknown fields
// are errors, so a typo never silently turns off a setting.
func Decode(kind string, data []byte) (Object, error) {
	var obj interface {
		Object
		Compile() error
	}
	switch kind {
	case KindWorkflow:
		obj = &Workflow{}
	case KindAppEvent:
		obj = &AppEvent{}
	case KindIntegration:
		obj = &Integration{}
	case "":
		return nil, Problems{{Field: "kind", Message: "is required (Workflow, AppEvent or Integration)"}}
	default:
		return nil, Problems{{Field: "kind", Message: fmt.Sprintf("unknown kind %q (supported: Workflow, AppEvent, Integration)", kind)}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return obj, Problems{{Message: strings.TrimPrefix(err.Error(), "json: ")}}
	}
	if err := obj.Compile(); err != nil {
		return obj, err
	}
	return obj, nil
}
