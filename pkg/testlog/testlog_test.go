package testlog_test

import (
	"testing"

	"github.com/switchboard-hq/switchboard/pkg/testlog"
)

// A line logged after the test ended is dropped instead of panicking.
func TestLateLinesAreDropped(t *testing.T) {
	var log = func() func(string) {
		var l func(string)
		t.Run("inner", func(t *testing.T) {
			lg := testlog.New(t)
			lg.Warn("during the test")
			l = func(s string) { lg.Warn(s) }
		})
		return l
	}()
	log("after the test") // would panic if written to the ended test
}
