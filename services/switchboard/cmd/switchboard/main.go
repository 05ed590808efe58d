// Command switchboard is the one Switchboard binary: `switchboard dev` runs
// every role in one process around an embedded NATS, `switchboard serve
// --role …` runs a chosen set of roles against an external NATS (one image
// serves every role), and the other subcommands are a CLI for the HTTP API.
package main

import (
	"os"

	"github.com/switchboard-hq/switchboard/services/switchboard/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
