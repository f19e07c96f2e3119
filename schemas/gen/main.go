// Command gen writes schemas/*.json from the Go types in pkg/events.
// Run it with `go generate ./schemas`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ringmesh/ringmesh/schemas/generate"
)

func main() {
	files, err := generate.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("wrote %d schemas\n", len(files))
}
