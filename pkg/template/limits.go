package template

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

// Limits of one evaluation. A workflow is written by a tenant and runs in a
// process shared by every tenant, so what one expression may build or spend
// is bounded: `reduce(1..29, #acc + #acc, "a")` alone built 512 MB.
//
// expr's own VM budget counts collection elements (ranges, array and map
// literals, sorts) but not string bytes, and nothing bounds time; so the
// program is patched at compile time (boundVisitor): string-growing
// operators check the size they would produce before producing it, other
// value-building builtins are charged for what they return, and every
// predicate iteration is a step.
const (
	// MaxValueBytes bounds any one value an expression builds or returns
	// (strings by their bytes, collections by their contents).
	MaxValueBytes = 1 << 20
	// MaxTotalBytes bounds all the values one evaluation (one template,
	// every expression in it) builds.
	MaxTotalBytes = 8 << 20
	// MaxElements is the VM's budget of collection elements per evaluation.
	MaxElements = 100_000
	// MaxSteps bounds predicate iterations and checked operations.
	MaxSteps = 1_000_000
	// MaxDuration bounds an evaluation's wall-clock time, for steps that
	// are each expensive.
	MaxDuration = time.Second
)

// ErrLimit is matched (errors.Is) by every limit error.
var ErrLimit = errors.New("expression limit exceeded")

// LimitError is an evaluation stopped by a limit; its message is what the
// run's step error shows.
type LimitError struct{ msg string }

func (e *LimitError) Error() string        { return e.msg }
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

var (
	errValue    = &LimitError{fmt.Sprintf("expression exceeded the %d MiB value limit", MaxValueBytes>>20)}
	errTotal    = &LimitError{fmt.Sprintf("expression exceeded the %d MiB limit on values built in one evaluation", MaxTotalBytes>>20)}
	errElements = &LimitError{fmt.Sprintf("expression exceeded the limit of %d collection elements", MaxElements)}
	errSteps    = &LimitError{fmt.Sprintf("expression exceeded the limit of %d steps", MaxSteps)}
	errTime     = &LimitError{fmt.Sprintf("expression exceeded the %v time limit", MaxDuration)}
)

// budgetVar is the env name of the evaluation's budget. It has a space, so
// no expression can name it; only the patched calls receive it.
const budgetVar = "sb budget"

// budget is one evaluation's account.
type budget struct {
	bytes int
	steps int
	start time.Time
}

func newBudget() *budget { return &budget{start: time.Now()} }

func (b *budget) step() error {
	b.steps++
	if b.steps > MaxSteps {
		return errSteps
	}
	// time.Since on every step would cost more than most steps.
	if b.steps%256 == 0 && time.Since(b.start) > MaxDuration {
		return errTime
	}
	return nil
}

// charge accounts for a new value of n bytes.
func (b *budget) charge(n int) error {
	if n > MaxValueBytes {
		return errValue
	}
	b.bytes += n
	if b.bytes > MaxTotalBytes {
		return errTotal
	}
	return b.step()
}

// sizeOf approximates the memory a value holds: string bytes, plus a word
// per element; a value reached twice counts twice, since encoding it (JSON,
// join, a request body) writes it twice. It stops counting past limit.
func sizeOf(v any, limit int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		if n > limit {
			return
		}
		switch x := v.(type) {
		case nil, bool, int, int64, float64:
			n += 8
		case string:
			n += len(x) + 16
		case []any:
			n += 24
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			n += 48
			for k, e := range x {
				n += len(k) + 16
				walk(e)
			}
		case []int:
			n += 24 + 8*len(x)
		case []float64:
			n += 24 + 8*len(x)
		case []string:
			n += 24
			for _, e := range x {
				n += len(e) + 16
			}
		default:
			rv := reflect.ValueOf(v)
			switch rv.Kind() {
			case reflect.Slice, reflect.Array:
				n += 24
				for i := 0; i < rv.Len() && n <= limit; i++ {
					walk(rv.Index(i).Interface())
				}
			case reflect.Map:
				n += 48
				it := rv.MapRange()
				for it.Next() && n <= limit {
					walk(it.Key().Interface())
					walk(it.Value().Interface())
				}
			default:
				n += 16
			}
		}
	}
	walk(v)
	return n
}

// Calls the patched program makes; their names have a space, like
// budgetVar, so expressions cannot call them directly.
const (
	fnTick    = "sb tick"
	fnAdd     = "sb add"
	fnArg     = "sb arg"
	fnOut     = "sb out"
	fnRepeat  = "sb repeat"
	fnReplace = "sb replace"
	fnJoin    = "sb join"
)

// sized are the builtins that build a value from their arguments: they
// may only take arguments within the value limit (so what they build
// is bounded by a small multiple of it before it exists) and are charged
// for what they return. repeat, replace and join multiply their input and
// have checked versions instead.
var sized = map[string]bool{
	"upper": true, "lower": true, "trim": true, "trimPrefix": true, "trimSuffix": true,
	"split": true, "splitAfter": true, "string": true, "toJSON": true, "fromJSON": true,
	"toBase64": true, "fromBase64": true, "concat": true, "flatten": true, "keys": true,
	"values": true, "toPairs": true, "fromPairs": true, "reverse": true, "uniq": true,
	"sort": true, "take": true,
}

// checked are the builtins replaced by versions that compute the size of
// their result before building it.
var checked = map[string]string{"repeat": fnRepeat, "replace": fnReplace, "join": fnJoin}

func budgetOf(v any) (*budget, error) {
	b, ok := v.(*budget)
	if !ok || b == nil {
		return nil, fmt.Errorf("internal: expression evaluated without a budget")
	}
	return b, nil
}

var boundFunctions = []expr.Option{
	expr.Function(fnTick, func(args ...any) (any, error) {
		b, err := budgetOf(args[0])
		if err != nil {
			return nil, err
		}
		if err := b.step(); err != nil {
			return nil, err
		}
		return args[1], nil
	}),
	expr.Function(fnAdd, func(args ...any) (any, error) {
		b, err := budgetOf(args[0])
		if err != nil {
			return nil, err
		}
		if x, ok := args[1].(string); ok {
			if y, ok := args[2].(string); ok {
				if err := b.charge(len(x) + len(y)); err != nil {
					return nil, err
				}
				return x + y, nil
			}
		}
		if err := b.step(); err != nil {
			return nil, err
		}
		return runtime.Add(args[1], args[2]), nil
	}),
	expr.Function(fnArg, func(args ...any) (any, error) {
		b, err := budgetOf(args[0])
		if err != nil {
			return nil, err
		}
		if sizeOf(args[1], MaxValueBytes) > MaxValueBytes {
			return nil, errValue
		}
		return args[1], b.step()
	}),
	expr.Function(fnOut, func(args ...any) (any, error) {
		b, err := budgetOf(args[0])
		if err != nil {
			return nil, err
		}
		return args[1], b.charge(sizeOf(args[1], MaxValueBytes))
	}),
	expr.Function(fnRepeat, func(args ...any) (any, error) {
		b, err := budgetOf(args[0])
		if err != nil {
			return nil, err
		}
		s, ok := args[1].(string)
		if !ok {
			return nil, fmt.Errorf("repeat: expected a string, got %T", args[1])
		}
		n := runtime.ToInt(args[2])
		if n < 0 {
			return nil, fmt.Errorf("invalid argument for repeat (expected positive integer, got %d)", n)
		}
		if n > 0 && len(s) > MaxValueBytes/n {
			return nil, errValue
		}
		if err := b.charge(len(s) * n); err != nil {
			return nil, err
		}
		return strings.Repeat(s, n), nil
	}),
	expr.Function(fnReplace, func(args ...any) (any, error) {
		b, err := budgetOf(args[0])
		if err != nil {
			return nil, err
		}
		if len(args) != 4 && len(args) != 5 {
			return nil, fmt.Errorf("invalid number of arguments for replace (expected 3 or 4, got %d)", len(args)-1)
		}
		var strs [3]string
		for i := range strs {
			s, ok := args[1+i].(string)
			if !ok {
				return nil, fmt.Errorf("replace: expected a string, got %T", args[1+i])
			}
			strs[i] = s
		}
		s, old, repl := strs[0], strs[1], strs[2]
		n := -1
		if len(args) == 5 {
			n = runtime.ToInt(args[4])
		}
		count := strings.Count(s, old)
		if n >= 0 && n < count {
			count = n
		}
		if grow := len(repl) - len(old); grow > 0 && count > 0 && grow > (MaxValueBytes-len(s))/count {
			return nil, errValue
		}
		out := strings.Replace(s, old, repl, n)
		return out, b.charge(len(out))
	}),
	expr.Function(fnJoin, func(args ...any) (any, error) {
		b, err := budgetOf(args[0])
		if err != nil {
			return nil, err
		}
		glue := ""
		if len(args) == 3 {
			g, ok := args[2].(string)
			if !ok {
				return nil, fmt.Errorf("join: glue must be a string, got %T", args[2])
			}
			glue = g
		}
		var parts []string
		switch x := args[1].(type) {
		case []string:
			parts = x
		case []any:
			parts = make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("join: element %d is %T, not a string", i, e)
				}
				parts[i] = s
			}
		default:
			return nil, fmt.Errorf("invalid argument for join (type %T)", args[1])
		}
		total := 0
		for i, p := range parts {
			total += len(p)
			if i > 0 {
				total += len(glue)
			}
			if total > MaxValueBytes {
				return nil, errValue
			}
		}
		if err := b.charge(total); err != nil {
			return nil, err
		}
		return strings.Join(parts, glue), nil
	}),
}

// boundVisitor patches a checked tree so that the program accounts for
// what it builds (see the Limits comment). It runs after expr's first type
// check, so operand types are known where the source made them known.
type boundVisitor struct{}

func ident(name string) ast.Node { return &ast.IdentifierNode{Value: name} }

func call(fn string, args ...ast.Node) ast.Node {
	return &ast.CallNode{Callee: ident(fn), Arguments: append([]ast.Node{ident(budgetVar)}, args...)}
}

func (boundVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		n.Node = call(fnTick, n.Node)
	case *ast.BinaryNode:
		// Numbers cannot grow; anything else (strings, or types known only
		// at run time) goes through the checked addition.
		if n.Operator == "+" && !(isNumber(n.Left) && isNumber(n.Right)) {
			*node = call(fnAdd, n.Left, n.Right)
		}
	case *ast.BuiltinNode:
		if fn, ok := checked[n.Name]; ok {
			*node = call(fn, n.Arguments...)
			return
		}
		if sized[n.Name] {
			for i, a := range n.Arguments {
				n.Arguments[i] = call(fnArg, a)
			}
			*node = call(fnOut, n)
		}
	}
}

func isNumber(n ast.Node) bool {
	t := n.Type()
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// compileBounded compiles src twice: plainly, so that a type error is
// reported as expr reports it (the patched calls take any arguments and
// would defer it to run time), and patched, for the program that runs.
// Before both, constants that can only exceed a limit are rejected.
func compileBounded(src string, names []string) (*vm.Program, error) {
	if err := checkConstants(src); err != nil {
		return nil, err
	}
	env := expr.Env(compileEnv(names))
	if _, err := expr.Compile(src, env); err != nil {
		return nil, err
	}
	opts := append([]expr.Option{env, expr.Patch(boundVisitor{})}, boundFunctions...)
	return expr.Compile(src, opts...)
}

// checkConstants rejects, at apply time, what would exceed a limit on every
// run: a range with constant bounds over the element budget, a constant
// repeat over the value limit.
func checkConstants(src string) error {
	tree, err := parser.Parse(src)
	if err != nil {
		return err
	}
	v := &constVisitor{}
	ast.Walk(&tree.Node, v)
	return v.err
}

type constVisitor struct{ err error }

func (v *constVisitor) Visit(node *ast.Node) {
	if v.err != nil {
		return
	}
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator != ".." {
			return
		}
		lo, ok1 := constNumber(n.Left)
		hi, ok2 := constNumber(n.Right)
		if ok1 && ok2 && hi-lo+1 > MaxElements {
			v.err = fmt.Errorf("range %v..%v has %v elements, over the limit of %d collection elements", lo, hi, hi-lo+1, MaxElements)
		}
	case *ast.BuiltinNode:
		if n.Name != "repeat" || len(n.Arguments) != 2 {
			return
		}
		s, ok1 := n.Arguments[0].(*ast.StringNode)
		times, ok2 := constNumber(n.Arguments[1])
		if ok1 && ok2 && float64(len(s.Value))*times > MaxValueBytes {
			v.err = fmt.Errorf("repeat builds %v bytes, over the %d MiB value limit", float64(len(s.Value))*times, MaxValueBytes>>20)
		}
	}
}

func constNumber(n ast.Node) (float64, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return float64(x.Value), true
	case *ast.FloatNode:
		return x.Value, true
	case *ast.UnaryNode:
		if x.Operator == "-" {
			if f, ok := constNumber(x.Node); ok {
				return -f, true
			}
		}
	}
	return 0, false
}
