// Command steady is the steady agent and its command-line interface; under
// another name (pmfadm, cfgadm, ...) it is that command. All logic lives in
// internal/cli.
package main

import (
	"os"

	"github.com/steady-ha/steady/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
