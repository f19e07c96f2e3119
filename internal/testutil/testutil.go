// Package testutil has the polling helpers ringmesh tests share: poll with
// a deadline, never sleep and hope.
package testutil

import (
	"fmt"
	"testing"
	"time"
)

// Eventually calls f every tick until it returns nil or timeout passes, then
// fails the test with f's last error.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	if err := Poll(timeout, 20*time.Millisecond, f); err != nil {
		t.Fatalf("not within %s: %v", timeout, err)
	}
}

// EventuallyTrue calls cond every tick until it returns true or timeout
// passes, then fails the test saying what it waited for.
func EventuallyTrue(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, timeout, func() error {
		if !cond() {
			return fmt.Errorf("still waiting for %s", what)
		}
		return nil
	})
}

// Poll is Eventually without a testing.TB; it returns f's last error.
func Poll(timeout, tick time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(tick)
	}
}

// Errorf is fmt.Errorf, for brevity inside Eventually closures.
func Errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
