package coordinator

import (
	"slices"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/auth"
)

// Every API operation the coordinator serves is classified for the bus
// permissions: a viewer's read operation or an admin's. An operation in
// neither list would be unreachable for viewers without anyone deciding so.
func TestEveryAPIOperationHasARole(t *testing.T) {
	c := &Coordinator{}
	for op := range c.apiHandlers() {
		read, admin := slices.Contains(auth.ReadOps, op), slices.Contains(auth.AdminOps, op)
		if read == admin {
			t.Errorf("API operation %q: in ReadOps %v, in AdminOps %v; want exactly one", op, read, admin)
		}
	}
	for _, op := range append(slices.Clone(auth.ReadOps), auth.AdminOps...) {
		if _, ok := c.apiHandlers()[op]; !ok {
			t.Errorf("auth lists %q, which the coordinator does not serve", op)
		}
	}
}
