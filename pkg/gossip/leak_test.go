package gossip

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine started by them is
// still running after the last test: every Member's loops are joined by
// Shutdown. memberlist's own probe goroutine is ignored: Memberlist.Shutdown
// does not wait for an in-flight probe, which ends on its own timeout.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}
