package main

import "testing"

func TestCheckField(t *testing.T) {
	echo, bareI := checkField("echo"), checkField("i")
	for _, tc := range []struct {
		name   string
		check  func(int64, int, []byte) error
		i      int64
		status int
		body   string
		ok     bool
	}{
		{"number", echo, 42, 200, `{"echo":42}`, true},
		{"string", echo, 42, 200, `{"echo":"42"}`, true},
		{"bare body", bareI, 7, 200, `{"i":7}`, true},
		{"other value", echo, 42, 200, `{"echo":43}`, false},
		{"missing", echo, 42, 200, `{"i":42}`, false},
		{"not json", echo, 42, 200, `42`, false},
		{"not 200", echo, 42, 201, `{"echo":42}`, false},
		{"prefix only", echo, 4, 200, `{"echo":42}`, false},
	} {
		if err := tc.check(tc.i, tc.status, []byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if got := string(syncBody(12)); got != `{"i":12}` {
		t.Errorf("syncBody = %s", got)
	}
}
