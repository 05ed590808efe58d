// Package template compiles the `{{ expr }}` templates that workflow steps
// use, with github.com/expr-lang/expr as the expression language.
//
// Templates are compiled once, when a workflow is applied, so that a broken
// expression is an apply-time error and never a run-time surprise. A value
// may be any JSON-like tree (maps, slices, strings, numbers); only strings
// containing "{{" are expressions:
//
//   - "{{ trigger.payload.count }}" alone keeps the expression's own type
//     (a number stays a number in a JSON body);
//   - "Hello {{ user.id }}!" interpolates and is always a string.
package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Env names the variables an expression may use. Their values are only
// placeholders for type checking: every field access below them is dynamic.
var envNames = []string{"trigger", "user", "credential", "steps", "run"}

func compileEnv(names []string) map[string]any {
	env := make(map[string]any, len(names)+1)
	for _, n := range names {
		env[n] = map[string]any{}
	}
	env[budgetVar] = (*budget)(nil)
	return env
}

// Expr is one compiled expression.
type Expr struct {
	src  string
	prog *vm.Program
}

// CompileExpr compiles a bare expression (as used by `if:`).
func CompileExpr(src string) (*Expr, error) { return CompileExprEnv(src, envNames...) }

// CompileExprEnv compiles a bare expression over other variables than a
// workflow's (an integration manifest's expressions see the delivery:
// body, headers, query, item). Every name is a map whose fields are
// dynamic; any other identifier is a compile error, as in CompileExpr.
func CompileExprEnv(src string, names ...string) (*Expr, error) {
	src = strings.TrimSpace(src)
	if strings.HasPrefix(src, "{{") && strings.HasSuffix(src, "}}") {
		src = strings.TrimSpace(src[2 : len(src)-2])
	}
	if src == "" {
		return nil, fmt.Errorf("empty expression")
	}
	prog, err := compileBounded(src, names)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	return &Expr{src: src, prog: prog}, nil
}

// Eval evaluates the expression over env, within the limits of one
// evaluation (see limits.go).
func (e *Expr) Eval(env map[string]any) (any, error) {
	return e.eval(env, newBudget())
}

func (e *Expr) eval(env map[string]any, b *budget) (any, error) {
	// The budget travels in the env under a name the expression syntax
	// cannot spell: the program is shared by concurrent runs, the budget
	// is this evaluation's own.
	run := make(map[string]any, len(env)+1)
	maps.Copy(run, env)
	run[budgetVar] = b
	m := vm.VM{MemoryBudget: MaxElements}
	v, err := m.Run(e.prog, run)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", e.src, limitOr(err))
	}
	if sizeOf(v, MaxValueBytes) > MaxValueBytes {
		return nil, fmt.Errorf("expression %q: %w", e.src, errValue)
	}
	return v, nil
}

// limitOr turns a limit hit inside the VM into the bare limit error (the
// VM's location snippet adds nothing to "exceeded the limit"), and the VM's
// own element budget into one.
func limitOr(err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		return le
	}
	var fe *file.Error
	if errors.As(err, &fe) && strings.Contains(fe.Message, "memory budget exceeded") {
		return errElements
	}
	return err
}

// Bool evaluates the expression and reports its truthiness: false, nil, 0,
// "" and empty collections are false.
func (e *Expr) Bool(env map[string]any) (bool, error) {
	v, err := e.Eval(env)
	if err != nil {
		return false, err
	}
	return Truthy(v), nil
}

// String is the source of the expression.
func (e *Expr) String() string { return e.src }

// Truthy is the truth value of v.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case int:
		return x != 0
	case int64:
		return x != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	default:
		return true
	}
}

// Template is a compiled value tree.
type Template struct {
	node node
}

// Compile compiles v, a JSON-like value; path names v in error messages.
func Compile(v any) (*Template, error) {
	n, err := compile(v, "")
	if err != nil {
		return nil, err
	}
	return &Template{node: n}, nil
}

// MustStatic reports whether t has no expressions.
func (t *Template) Static() bool { _, ok := t.node.(static); return ok }

// Eval renders the template over env. All the template's expressions share
// one evaluation budget, so a template of many expressions is bounded as one.
func (t *Template) Eval(env map[string]any) (any, error) {
	if t == nil {
		return nil, nil
	}
	return t.node.eval(env, newBudget())
}

// EvalString renders the template and formats the result as a string.
func (t *Template) EvalString(env map[string]any) (string, error) {
	v, err := t.Eval(env)
	if err != nil {
		return "", err
	}
	return Format(v), nil
}

type node interface {
	eval(env map[string]any, b *budget) (any, error)
}

type static struct{ v any }

func (s static) eval(map[string]any, *budget) (any, error) { return s.v, nil }

type exprNode struct{ e *Expr }

func (n exprNode) eval(env map[string]any, b *budget) (any, error) {
	v, err := n.e.eval(env, b)
	if err != nil {
		return nil, err
	}
	// What the template keeps counts against the shared total.
	if err := b.charge(sizeOf(v, MaxValueBytes)); err != nil {
		return nil, fmt.Errorf("expression %q: %w", n.e.src, err)
	}
	return v, nil
}

type interp struct {
	parts []node // static strings and expressions, in order
}

func (n interp) eval(env map[string]any, bud *budget) (any, error) {
	var b strings.Builder
	for _, p := range n.parts {
		v, err := p.eval(env, bud)
		if err != nil {
			return nil, err
		}
		b.WriteString(Format(v))
		if b.Len() > MaxValueBytes {
			return nil, errValue
		}
	}
	return b.String(), nil
}

type mapNode struct {
	keys []string
	vals []node
}

func (n mapNode) eval(env map[string]any, b *budget) (any, error) {
	out := make(map[string]any, len(n.keys))
	for i, k := range n.keys {
		v, err := n.vals[i].eval(env, b)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

type listNode []node

func (n listNode) eval(env map[string]any, b *budget) (any, error) {
	out := make([]any, len(n))
	for i, e := range n {
		v, err := e.eval(env, b)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func compile(v any, path string) (node, error) {
	switch x := v.(type) {
	case string:
		return compileString(x, path)
	case map[string]any:
		m := mapNode{}
		allStatic := true
		for k, val := range x {
			n, err := compile(val, join(path, k))
			if err != nil {
				return nil, err
			}
			if _, ok := n.(static); !ok {
				allStatic = false
			}
			m.keys = append(m.keys, k)
			m.vals = append(m.vals, n)
		}
		if allStatic {
			return static{x}, nil
		}
		return m, nil
	case []any:
		l := make(listNode, len(x))
		allStatic := true
		for i, val := range x {
			n, err := compile(val, path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			if _, ok := n.(static); !ok {
				allStatic = false
			}
			l[i] = n
		}
		if allStatic {
			return static{x}, nil
		}
		return l, nil
	default:
		return static{v}, nil
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func compileString(s, path string) (node, error) {
	if !strings.Contains(s, "{{") {
		return static{s}, nil
	}
	wrap := func(err error) error {
		if path == "" {
			return err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	var parts []node
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				parts = append(parts, static{rest})
			}
			break
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, wrap(fmt.Errorf("unclosed {{ in %q", s))
		}
		if i > 0 {
			parts = append(parts, static{rest[:i]})
		}
		e, err := CompileExpr(rest[i+2 : i+2+j])
		if err != nil {
			return nil, wrap(err)
		}
		parts = append(parts, exprNode{e})
		rest = rest[i+2+j+2:]
	}
	if len(parts) == 1 {
		if e, ok := parts[0].(exprNode); ok {
			return e, nil
		}
	}
	return interp{parts: parts}, nil
}

// Format renders v for string interpolation: strings as they are, nil as
// empty, numbers without exponent noise, everything else as JSON.
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}
