package manifest

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/switchboard-hq/switchboard/pkg/template"
)

// Most routing expressions are a field of the body or a header, maybe with
// `??` defaults and string(): `body.id`, `body.account ?? ""`,
// `headers["svix-id"] ?? headers["webhook-id"]`,
// `string(body.installation?.id ?? "")`. Running them through the VM costs
// an env map copy, a VM and a budget per expression per delivery; a
// fastExpr evaluates that shape directly over the delivery.
//
// It answers only where the VM's answer is certain: map look-ups (a
// missing key is nil), `?.` on nil (the chain is nil), `??`, string
// literals, string() of a string, integer or bool. Anything else — a
// field of a non-map, a non-optional field of nil, a list or map result,
// a long string, string() of another type — returns !ok and the caller
// runs the compiled program, so errors and limits are the VM's own.
type fastExpr struct {
	str  bool     // wrapped in string()
	node fastNode // the ?? chain, or one operand
}

// maxFastString is the longest string a fastExpr returns; longer ones go
// through the VM and its value limit.
const maxFastString = 64 << 10

// fastNode is a literal, a path, or a ?? of two nodes.
type fastNode struct {
	lit         *string
	path        *fastPath
	left, right *fastNode
}

// fastPath is a variable and its field steps; chain: the source had a ?.
// (an optional step on nil makes the whole path nil).
type fastPath struct {
	root  string
	steps []fastStep
	chain bool
	// header is steps[0].key in the canonical form, for the direct look-up
	// (only when it lower-cases back to the key: see headerValue).
	header string
}

type fastStep struct {
	key      string
	optional bool
}

// routingExprs are the fast forms of a webhook's routing expressions (nil:
// the expression is not of that shape, or absent).
type routingExprs struct {
	accountID, eventType, eventID, userID *fastExpr
}

// compileFast finds the fast forms of w's expressions; it runs after
// compile and compileResource, which compiled the programs.
func (w *Webhook) compileFast() {
	w.c.fast = routingExprs{
		accountID: newFastExpr(w.c.accountID),
		eventType: newFastExpr(w.c.eventType),
		eventID:   newFastExpr(w.c.eventID),
		userID:    newFastExpr(w.userID),
	}
}

func newFastExpr(e *template.Expr) *fastExpr {
	if e == nil {
		return nil
	}
	tree, err := parser.Parse(e.String())
	if err != nil {
		return nil
	}
	n := tree.Node
	out := &fastExpr{}
	if b, ok := n.(*ast.BuiltinNode); ok && b.Name == "string" && len(b.Arguments) == 1 {
		out.str, n = true, b.Arguments[0]
	}
	fn := fastNodeOf(n)
	if fn == nil {
		return nil
	}
	out.node = *fn
	return out
}

func fastNodeOf(n ast.Node) *fastNode {
	switch x := n.(type) {
	case *ast.StringNode:
		s := x.Value
		return &fastNode{lit: &s}
	case *ast.BinaryNode:
		if x.Operator != "??" {
			return nil
		}
		l, r := fastNodeOf(x.Left), fastNodeOf(x.Right)
		if l == nil || r == nil {
			return nil
		}
		return &fastNode{left: l, right: r}
	case *ast.ChainNode:
		p := fastPathOf(x.Node)
		if p == nil {
			return nil
		}
		p.chain = true
		return &fastNode{path: p}
	default:
		p := fastPathOf(n)
		if p == nil {
			return nil
		}
		for _, s := range p.steps {
			if s.optional {
				return nil // ?. outside a chain: not a shape the compiler makes
			}
		}
		return &fastNode{path: p}
	}
}

// fastPathOf reads var.a?.b["c"]…, innermost first.
func fastPathOf(n ast.Node) *fastPath {
	var steps []fastStep
	for {
		switch x := n.(type) {
		case *ast.MemberNode:
			k, ok := x.Property.(*ast.StringNode)
			if !ok || x.Method {
				return nil
			}
			steps = append(steps, fastStep{key: k.Value, optional: x.Optional})
			n = x.Node
			continue
		case *ast.IdentifierNode:
			switch x.Value {
			case VarBody, VarItem, VarHeaders, VarQuery:
			default:
				return nil
			}
			if len(steps) == 0 {
				return nil // a whole variable is a map: the VM's
			}
			for i, j := 0, len(steps)-1; i < j; i, j = i+1, j-1 {
				steps[i], steps[j] = steps[j], steps[i]
			}
			p := &fastPath{root: x.Value, steps: steps}
			if x.Value == VarHeaders {
				if c := textproto.CanonicalMIMEHeaderKey(steps[0].key); strings.ToLower(c) == steps[0].key {
					p.header = c
				}
			}
			return p
		default:
			return nil
		}
	}
}

// fastEnv is what a fastExpr reads: the parsed body, the item and the
// request as they are (the VM's env holds the same, as maps).
type fastEnv struct {
	body, item any
	header     http.Header
	query      url.Values
}

// eval is the expression's value; !ok: only the VM can say.
func (e *fastExpr) eval(env *fastEnv) (any, bool) {
	v, ok := e.node.eval(env)
	if !ok {
		return nil, false
	}
	if e.str {
		switch x := v.(type) {
		case string:
		case int64:
			v = strconv.FormatInt(x, 10)
		case bool:
			v = strconv.FormatBool(x)
		default:
			return nil, false // fmt's %v of floats, nil, maps: the VM's
		}
	}
	switch x := v.(type) {
	case nil, int64, float64, bool:
		return v, true
	case string:
		return v, len(x) <= maxFastString
	}
	return nil, false
}

func (n *fastNode) eval(env *fastEnv) (any, bool) {
	switch {
	case n.lit != nil:
		return *n.lit, true
	case n.path != nil:
		return n.path.eval(env)
	}
	l, ok := n.left.eval(env)
	if !ok {
		return nil, false
	}
	if l != nil {
		return l, true
	}
	return n.right.eval(env)
}

func (p *fastPath) eval(env *fastEnv) (any, bool) {
	var v any
	steps := p.steps
	switch p.root {
	case VarBody, VarItem:
		v = env.body
		if p.root == VarItem {
			v = env.item
		}
	case VarHeaders:
		v, steps = p.headerValue(env.header), steps[1:]
	case VarQuery:
		if vs := env.query[steps[0].key]; len(vs) > 0 {
			v = vs[0]
		}
		steps = steps[1:]
	}
	for _, s := range steps {
		switch x := v.(type) {
		case map[string]any:
			if x == nil {
				return nil, false
			}
			v = x[s.key] // missing: nil, as the VM's fetch from a map
		case nil:
			if s.optional && p.chain {
				return nil, true
			}
			return nil, false // the VM's "cannot fetch" error
		default:
			return nil, false
		}
	}
	return v, true
}

// headerValue is the VM's headers[key]: the first value of the header
// whose lower-cased name is key (firstValues). The canonical name is
// tried first; else every name is lower-cased and compared.
func (p *fastPath) headerValue(h http.Header) any {
	key := p.steps[0].key
	if p.header != "" {
		if vs := h[p.header]; len(vs) > 0 {
			return vs[0]
		}
	}
	for k, vs := range h {
		if len(vs) > 0 && lowerIs(k, key) {
			return vs[0]
		}
	}
	return nil
}

// lowerIs reports strings.ToLower(k) == key, without building the lower
// case of an ASCII k.
func lowerIs(k, key string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			return strings.ToLower(k) == key
		}
	}
	if len(k) != len(key) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != key[i] {
			return false
		}
	}
	return true
}
