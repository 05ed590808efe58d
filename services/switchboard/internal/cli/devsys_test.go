package cli

import (
	"context"
	"testing"

	"github.com/switchboard-hq/switchboard/services/switchboard/dev"
)

// startDev starts a dev system (its own data directory, a free HTTP port)
// for one test and stops it when the test ends.
func startDev(ctx context.Context, t *testing.T) *dev.System {
	t.Helper()
	sys, err := dev.Start(ctx, dev.Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Stop(context.Background()) })
	return sys
}
