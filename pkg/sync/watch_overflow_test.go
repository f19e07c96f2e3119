package meshsync

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

// startWatch runs m.Watch with opts until the test ends; the returned
// channel is closed should Watch return before.
func startWatch(t *testing.T, m *Manifest, opts WatchOptions) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	var err error
	go func() {
		defer close(exited)
		err = m.Watch(ctx, opts)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		if err != context.Canceled {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	return exited
}

// hasEntry reports whether the manifest records path.
func hasEntry(m *Manifest, path string) func() bool {
	return func() bool { _, ok := m.Entry(path); return ok }
}

// When the kernel's queue overflows (its events are lost), Watch rescans
// at once: a file whose event was lost is recorded as soon as the loop has
// taken the overflow, with no event and long before any fallback tick, and
// events after it are handled again.
func TestWatchRescansOnInotifyOverflow(t *testing.T) {
	dir := t.TempDir()
	m := openTestManifest(t, []Source{{Name: "training", Class: ClassNPZ, Root: dir, Globs: []string{"**/*.npz"}}})
	// A stand-in for inotify: every watch "works", and the only events and
	// errors are the ones the test sends. Unbuffered, so a send returns
	// only once Watch's loop has taken it.
	evs, errs := make(chan fsnotify.Event), make(chan error)
	var adds atomic.Int32
	exited := startWatch(t, m, WatchOptions{Debounce: 20 * time.Millisecond, FallbackInterval: time.Hour,
		newNotifier: func() (notifier, error) {
			return notifier{add: func(string) error { adds.Add(1); return nil }, close: func() error { return nil }, events: evs, errors: errs}, nil
		}})
	hand := func(msg error) {
		t.Helper()
		select {
		case errs <- msg:
		case <-exited:
			t.Fatalf("Watch returned before taking %v", msg)
		case <-time.After(2 * time.Minute):
			t.Fatalf("Watch's loop did not take %v in 2 minutes", msg)
		}
	}
	// Taken by the loop: the initial walk is over, so it cannot have seen
	// what is written next.
	hand(errors.New("test: loop running"))
	if adds.Load() == 0 {
		t.Fatal("Watch added no watch on the root")
	}
	lost := filepath.Join(dir, "sub", "lost.npz")
	writeRandom(t, lost, 3000, 1) // its events are lost in the overflow: none is sent
	hand(errors.New("test: still running"))
	if hasEntry(m, lost)() {
		t.Fatal("lost.npz recorded before the overflow: something other than the rescan saw it")
	}

	hand(fsnotify.ErrEventOverflow)
	// The rescan runs inside the loop, so once the loop takes the next
	// message it is over: no wall-clock allowance needed.
	hand(errors.New("test: after the overflow"))
	if !hasEntry(m, lost)() {
		t.Fatal("after an inotify overflow: lost.npz not recorded, want the rescan to find it")
	}
	if r := m.RPO(time.Now()); r.UnsyncedFiles != 1 || r.UnsyncedBytes != 3000 {
		t.Errorf("RPO after the rescan: %+v, want lost.npz at risk (1 file, 3000 bytes)", r)
	}

	// The loop carries on with events after the overflow.
	after := filepath.Join(dir, "after.npz")
	writeRandom(t, after, 500, 2)
	select {
	case evs <- fsnotify.Event{Name: after, Op: fsnotify.Create}:
	case <-time.After(2 * time.Minute):
		t.Fatal("Watch's loop did not take an event after the overflow")
	}
	testutil.EventuallyTrue(t, 60*time.Second, "after.npz recorded from its event", hasEntry(m, after))
}

// When a watch cannot be added (the kernel's fs.inotify.max_user_watches
// is reached: inotify_add_watch fails with ENOSPC), the stat-only rescan
// every FallbackInterval still finds new files there, whether a
// subdirectory or the root itself is the one left unwatched.
func TestWatchFallsBackWhenAWatchCannotBeAdded(t *testing.T) {
	for _, tc := range []struct {
		name, unwatched string
		files           int // recorded in the end
	}{{"subdirectory", "deep", 3}, {"root", ".", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := openTestManifest(t, []Source{{Name: "training", Class: ClassNPZ, Root: dir, Globs: []string{"**/*.npz"}}})
			unwatched := filepath.Join(dir, tc.unwatched)
			writeRandom(t, filepath.Join(unwatched, "before.npz"), 100, 1) // the directory exists before Watch
			var refused atomic.Int32
			startWatch(t, m, WatchOptions{Debounce: 20 * time.Millisecond, FallbackInterval: 100 * time.Millisecond,
				newNotifier: func() (notifier, error) {
					n, err := newNotifier() // the real inotify, but for the one directory
					if err != nil {
						return n, err
					}
					add := n.add
					n.add = func(d string) error {
						if d == unwatched {
							refused.Add(1)
							return fmt.Errorf("test: inotify_add_watch %s: %w", d, syscall.ENOSPC)
						}
						return add(d)
					}
					return n, nil
				}})
			testutil.EventuallyTrue(t, 60*time.Second, "the watch on "+tc.unwatched+" refused", func() bool { return refused.Load() > 0 })
			testutil.EventuallyTrue(t, 60*time.Second, "before.npz recorded", hasEntry(m, filepath.Join(unwatched, "before.npz")))

			// No watch on unwatched (inotify is not recursive, and the
			// directory's own creation came before Watch): only the
			// fallback rescan can see this file.
			late := filepath.Join(unwatched, "late.npz")
			writeRandom(t, late, 2000, 2)
			testutil.EventuallyTrue(t, 60*time.Second, "late.npz recorded by the fallback rescan", hasEntry(m, late))
			if tc.unwatched != "." {
				// The rest of the tree is still watched through inotify.
				watched := filepath.Join(dir, "watched.npz")
				writeRandom(t, watched, 300, 3)
				testutil.EventuallyTrue(t, 60*time.Second, "watched.npz recorded", hasEntry(m, watched))
			}
			if r := m.RPO(time.Now()); r.UnsyncedFiles != tc.files {
				t.Errorf("RPO %+v: want the %d files found at risk", r, tc.files)
			}
		})
	}
}
