// Package examples embeds the documents `switchboard dev` applies to
// project "dev" at start (the *.yaml files at this directory's top level;
// the subdirectories are applied by hand in the README's walk-throughs).
// Embedding them lets the binary apply them from any working directory,
// not only from the repository root. It is a module of its own because an
// embed pattern reaches only into its own module's directory.
package examples

import (
	"embed"
	"io/fs"
)

//go:embed *.yaml
var files embed.FS

// FS returns the embedded documents; reading them never fails.
func FS() fs.FS { return files }
