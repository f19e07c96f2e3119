package meshsync

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Only partials older than the bound go; fresh partials and final files stay.
func TestSweepPartialsRemovesOnlyOldPartials(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	mk := func(rel string, age time.Duration) string {
		p := filepath.Join(dir, rel)
		writeRandom(t, p, 10, 1)
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldPartial := mk("vast-1/games/g.db"+PartialSuffix, 25*time.Hour)
	oldRsync := mk("vast-1/training/.rsync-partial/x.npz", 30*time.Hour)
	fresh := mk("vast-1/models/m.pt"+PartialSuffix, time.Hour)
	final := mk("vast-1/games/old.db", 100*time.Hour)
	removed, err := SweepPartials(context.Background(), dir, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Fatalf("removed %v, want the two old partials", removed)
	}
	for _, p := range []string{oldPartial, oldRsync} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there", p)
		}
	}
	for _, p := range []string{fresh, final} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	if r, err := SweepPartials(context.Background(), filepath.Join(dir, "missing"), time.Hour, now); err != nil || len(r) != 0 {
		t.Fatalf("missing dir: %v %v", r, err)
	}
}
