// Command fakenebius is the fake `nebius` CLI (package nebiusfake) as a
// standalone binary. Point it at a state file created by nebiusfake.New:
//
//	RINGMESH_FAKENEBIUS_STATE=/tmp/x/fakenebius-state.json fakenebius compute instance list --format json
//
// Tests do not need it: they re-execute the test binary through
// nebiusfake.RunIfInvoked.
package main

import (
	"fmt"
	"os"

	"github.com/ringmesh/ringmesh/pkg/providers/nebius/nebiusfake"
)

func main() {
	if os.Getenv(nebiusfake.EnvState) == "" {
		fmt.Fprintf(os.Stderr, "fakenebius: set $%s to a state file made by nebiusfake.New\n", nebiusfake.EnvState)
		os.Exit(2)
	}
	nebiusfake.RunIfInvoked()
}
