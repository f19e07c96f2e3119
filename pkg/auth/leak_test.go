package auth_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine started by them is
// still running after the last test: every long-lived part is joined by its
// owner.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
