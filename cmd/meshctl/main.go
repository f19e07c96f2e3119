// Command meshctl is the operator CLI of ringmesh: it asks a coordinator
// over NATS (mesh.v1.api.*) and prints tables or JSON.
package main

import (
	"os"

	"github.com/ringmesh/ringmesh/pkg/meshctl"
)

func main() {
	os.Exit(meshctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}
