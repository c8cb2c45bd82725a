// Package version holds the steady release string. The Makefile sets it at
// link time (-ldflags -X); nothing changes it while the program runs.
package version

import "runtime"

// Version is the steady release. It is a variable only so that the linker
// can set it; treat it as a constant.
var Version = "0.1.0-dev"

// String returns the release and the Go toolchain it was built with, as
// printed by "steady version".
func String() string {
	return Version + " (" + runtime.Version() + ")"
}
