package busserver

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine started by them is
// still running after the last test: every embedded server and cluster
// member is shut down and waited for by its owner.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
