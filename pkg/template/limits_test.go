package template_test

import (
	"errors"
	"math/rand"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/pkg/template"
)

// bigEnv is a run's env whose trigger carries a payload near the bus limit,
// the raw material an expression could multiply.
func bigEnv() map[string]any {
	return map[string]any{
		"trigger": map[string]any{"payload": map[string]any{
			"big":  strings.Repeat("x", 900_000),
			"list": make([]any, 100_000),
		}},
		"user": map[string]any{}, "credential": map[string]any{}, "steps": map[string]any{}, "run": map[string]any{},
	}
}

// heapAfter runs f and returns how many bytes it allocated, a sanity
// bound: an unbounded expression allocates hundreds of megabytes or more.
func heapAfter(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if after.TotalAlloc < before.TotalAlloc {
		return 0
	}
	return after.TotalAlloc - before.TotalAlloc
}

func TestDefect5ExpressionMemoryBound(t *testing.T) {
	t.Run("rejected at apply", func(t *testing.T) {
		for _, src := range []string{
			`repeat("a", 1e9)`,
			`repeat("a", 1000000000)`,
			`repeat("abcd", 300000)`,
			`map(1..100000000, #)`,
			`1..100000000`,
			`len(0..200000)`,
		} {
			t.Run(src, func(t *testing.T) {
				_, err := template.CompileExpr(src)
				if err == nil {
					t.Fatalf("CompileExpr(%s) accepted", src)
				}
				if !strings.Contains(err.Error(), "limit") {
					t.Errorf("error %q does not name the limit", err)
				}
			})
		}
	})

	t.Run("fails at run time", func(t *testing.T) {
		for _, c := range []struct{ name, src string }{
			{"reduce doubling", `reduce(1..29, #acc + #acc, "a")`},
			{"reduce doubling, short", `reduce(1..24, #acc + #acc, "a")`},
			{"doubling from payload", `reduce(1..10, #acc + #acc, trigger.payload.big)`},
			{"repeat of payload", `repeat(trigger.payload.big, 1000)`},
			{"repeat with run-time count", `repeat("a", len(trigger.payload.list) * 100000)`},
			{"range with run-time bound", `map(1..len(trigger.payload.list)*1000, #)`},
			{"map retaining copies", `map(1..50000, upper(trigger.payload.big))`},
			{"map of references", `map(1..50000, trigger.payload.big)`},
			{"join of references", `join(map(1..1000, trigger.payload.big), "")`},
			{"join glue", `join(map(1..10000, ""), trigger.payload.big)`},
			{"toJSON of references", `toJSON(map(1..1000, trigger.payload.big))`},
			{"replace growth", `replace(trigger.payload.big, "x", "xxxxxxxx")`},
			{"nested loops", `sum(map(trigger.payload.list, count(trigger.payload.list, # == nil)))`},
		} {
			t.Run(c.name, func(t *testing.T) {
				e, err := template.CompileExpr(c.src)
				if err != nil {
					t.Fatalf("CompileExpr: %v", err)
				}
				env := bigEnv()
				var v any
				start := time.Now()
				grew := heapAfter(func() { v, err = e.Eval(env) })
				if err == nil {
					t.Fatalf("Eval succeeded (value of %T)", v)
				}
				if !errors.Is(err, template.ErrLimit) {
					t.Fatalf("error %v is not a limit error", err)
				}
				if !strings.Contains(err.Error(), "expression exceeded") {
					t.Errorf("error %q is not clear", err)
				}
				if grew > 256<<20 {
					t.Errorf("evaluation allocated %d MiB", grew>>20)
				}
				t.Logf("%s after %v, %d KiB allocated", err, time.Since(start).Round(time.Millisecond), grew>>10)
			})
		}
	})

	t.Run("template shares one budget", func(t *testing.T) {
		parts := map[string]any{}
		for i := range 40 {
			parts[string(rune('a'+i%26))+strings.Repeat("k", i)] = "{{ trigger.payload.big + \"!\" }}"
		}
		tp, err := template.Compile(parts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Eval(bigEnv()); !errors.Is(err, template.ErrLimit) {
			t.Fatalf("Eval = %v, want a limit error", err)
		}
	})

	t.Run("ordinary expressions still work", func(t *testing.T) {
		for _, c := range []struct{ src, want string }{
			{`reduce(1..10, #acc + #acc, "a")`, strings.Repeat("a", 1024)},
			{`repeat("ab", 3)`, "ababab"},
			{`join(["a", "b"], ",")`, "a,b"},
			{`replace("aXb", "X", "-")`, "a-b"},
			{`string(len(map(1..1000, # * 2)))`, "1000"},
			{`"n=" + string(1 + 2)`, "n=3"},
			{`upper("x") + lower("Y")`, "Xy"},
			{`fromJSON(toJSON({"a": [1, 2]})).a[1]`, "2"},
		} {
			t.Run(c.src, func(t *testing.T) {
				e, err := template.CompileExpr(c.src)
				if err != nil {
					t.Fatal(err)
				}
				v, err := e.Eval(bigEnv())
				if err != nil {
					t.Fatal(err)
				}
				if got := template.Format(v); got != c.want {
					t.Errorf("= %.80q, want %.80q", got, c.want)
				}
			})
		}
	})
}

// TestExpressionLimitsFuzz combines growth operators at random: whatever the
// combination, an evaluation returns (a value or an error) without building
// more than the bound allows.
func TestExpressionLimitsFuzz(t *testing.T) {
	growers := []string{
		`#acc + #acc`, `#acc + trigger.payload.big`, `repeat(#acc, 3)`, `join([#acc, #acc, #acc])`,
		`replace(#acc, "a", "aaaa")`, `toJSON([#acc, #acc])`, `upper(#acc + #acc)`, `string([#acc, #acc])`,
	}
	seeds := []string{`"a"`, `"abc"`, `trigger.payload.big`, `toJSON(trigger.payload.list)`}
	r := rand.New(rand.NewSource(5))
	for i := range 40 {
		src := "reduce(1.." + string(rune('0'+1+r.Intn(9))) + "0, " + growers[r.Intn(len(growers))] + ", " + seeds[r.Intn(len(seeds))] + ")"
		t.Run(src, func(t *testing.T) {
			e, err := template.CompileExpr(src)
			if err != nil {
				t.Fatalf("CompileExpr: %v", err)
			}
			var v any
			grew := heapAfter(func() { v, err = e.Eval(bigEnv()) })
			if err != nil && !errors.Is(err, template.ErrLimit) {
				t.Logf("run-time error (not a limit): %v", err)
			}
			if err == nil {
				if s, ok := v.(string); ok && len(s) > template.MaxValueBytes {
					t.Errorf("value of %d bytes returned", len(s))
				}
			}
			if grew > 256<<20 {
				t.Errorf("evaluation %d allocated %d MiB", i, grew>>20)
			}
		})
	}
}
