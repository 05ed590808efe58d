package directory

import "testing"

// The opened webhook secrets belong to the stored entry they came from:
// an opened value of another revision is never attached, a newer entry or
// a removal drops it, and the number kept is bounded.
func TestHookSecretsOpened(t *testing.T) {
	opened := []WebhookSecret{{Value: "v"}}
	cases := []struct {
		name string
		run  func(c *hookSecrets) (open bool)
	}{
		{"kept for its revision", func(c *hookSecrets) bool {
			c.observe("w.p.i", []byte("a"), 5, true)
			c.keepOpened("w.p.i", 5, opened)
			e, _ := c.get("w.p.i")
			return e.open
		}},
		{"not kept for an older revision", func(c *hookSecrets) bool {
			c.observe("w.p.i", []byte("b"), 6, true)
			c.keepOpened("w.p.i", 5, opened)
			e, _ := c.get("w.p.i")
			return e.open
		}},
		{"dropped by a newer revision", func(c *hookSecrets) bool {
			c.observe("w.p.i", []byte("a"), 5, true)
			c.keepOpened("w.p.i", 5, opened)
			c.observe("w.p.i", []byte("b"), 6, true)
			e, _ := c.get("w.p.i")
			return e.open || c.nOpened != 0
		}},
		{"dropped by a removal", func(c *hookSecrets) bool {
			c.observe("w.p.i", []byte("a"), 5, true)
			c.keepOpened("w.p.i", 5, opened)
			c.observe("w.p.i", nil, 7, false)
			e, _ := c.get("w.p.i")
			return e.open || c.nOpened != 0
		}},
		{"dropped by forget", func(c *hookSecrets) bool {
			c.observe("w.p.i", []byte("a"), 5, true)
			c.keepOpened("w.p.i", 5, opened)
			c.forget("w.p.i")
			e, ok := c.get("w.p.i")
			return ok || e.open || c.nOpened != 0
		}},
		{"not kept with the cache off", func(c *hookSecrets) bool {
			c.observe("w.p.i", []byte("a"), 5, true)
			c.setOn(false)
			c.keepOpened("w.p.i", 5, opened)
			return c.nOpened != 0
		}},
	}
	want := map[string]bool{"kept for its revision": true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &hookSecrets{}
			c.setOn(true)
			if got := tc.run(c); got != want[tc.name] {
				t.Fatalf("got %v, want %v", got, want[tc.name])
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		c := &hookSecrets{}
		c.setOn(true)
		for n := range maxOpenedHookSecrets + 10 {
			key := "w.p.i" + string(rune('a'+n%26)) + string(rune(n))
			c.observe(key, []byte("a"), 1, true)
			c.keepOpened(key, 1, opened)
		}
		if c.nOpened != maxOpenedHookSecrets {
			t.Fatalf("%d opened values kept, want at most %d", c.nOpened, maxOpenedHookSecrets)
		}
	})
}
