// Command switchboard is the all-in-one Switchboard binary: `switchboard dev`
// runs every service in one process around an embedded NATS, and the other
// subcommands are a CLI for its HTTP API.
package main

import (
	"os"

	"github.com/switchboard-hq/switchboard/services/switchboard/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
