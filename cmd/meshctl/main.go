// Command meshctl is the operator CLI of ringmesh: it asks a coordinator
// over NATS (mesh.v1.api.*) and prints tables or JSON.
package main

import (
	"fmt"
	"os"

	"github.com/ringmesh/ringmesh/pkg/meshctl"
)

func main() {
	if err := meshctl.NewRoot(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "meshctl:", err)
		os.Exit(1)
	}
}
