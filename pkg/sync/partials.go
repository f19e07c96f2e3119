package meshsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SweepPartials removes orphaned partial uploads under dir (a node's
// sync_incoming directory, where other nodes push to): files named
// "*.partial" (SFTP uploads and database snapshots in flight) and files
// under ".rsync-partial" directories whose mtime is older than now -
// maxAge. An upload in progress writes its partial continuously and a
// resumed one rewrites it, so only uploads whose source gave up or vanished
// are that old. It returns the paths removed; unreadable entries are
// skipped and reported in the error (the sweep goes on). A missing dir is
// no error.
func SweepPartials(ctx context.Context, dir string, maxAge time.Duration, now time.Time) ([]string, error) {
	if maxAge <= 0 {
		return nil, fmt.Errorf("sweep partials: max age must be positive, got %s", maxAge)
	}
	cutoff := now.Add(-maxAge)
	var removed []string
	var errs []error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			errs = append(errs, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		inRsync := strings.Contains(filepath.ToSlash(p), "/.rsync-partial/")
		if !strings.HasSuffix(d.Name(), PartialSuffix) && !inRsync {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		if !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return nil
		}
		removed = append(removed, p)
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}
