package agent

import (
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/paths"
)

// auto_sync.data_classes from the inventory replaces the globs of the named
// default sources and keeps the others; an unknown source or a bad glob is
// an error naming the field.
func TestDataClassesFromInventory(t *testing.T) {
	inv, err := config.Parse("hosts.yaml", []byte("auto_sync:\n  data_classes:\n    games: [\"**/*.db\", \"archive/**/*.sqlite\"]\n    training: [\"**/*.npy\"]\nhosts:\n  vast-1: {provider: vast}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := paths.Resolver{Root: t.TempDir(), Home: "/root"}.Layout("vast", "", nil)
	def := DefaultSources(l, paths.Resolver{})
	got, err := ApplyDataClasses(def, inv.AutoSync.DataClasses)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string][]string{}
	for _, s := range got {
		by[s.Name] = s.Globs
	}
	if strings.Join(by["games"], ",") != "**/*.db,archive/**/*.sqlite" || strings.Join(by["training"], ",") != "**/*.npy" {
		t.Fatalf("globs not applied: %v", by)
	}
	if len(by["models"]) != 0 || len(by["checkpoints"]) != 0 {
		t.Fatalf("unlisted sources changed: %v", by)
	}
	if strings.Join(def[0].Globs, ",") != "**/*.db" {
		t.Fatalf("defaults modified in place: %v", def[0].Globs)
	}
	if _, err := ApplyDataClasses(def, map[string][]string{"gmaes": {"*.db"}}); err == nil || !strings.Contains(err.Error(), `auto_sync.data_classes: unknown source "gmaes"`) {
		t.Fatalf("unknown source: %v", err)
	}
	if _, err := ApplyDataClasses(def, map[string][]string{"games": {"../*.db"}}); err == nil || !strings.Contains(err.Error(), "auto_sync.data_classes.games") {
		t.Fatalf("bad glob: %v", err)
	}
}
