package api_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
)

// TestCallWithNodeCredsSaysRefused: a node's own credentials may not
// publish to the API, so Call reports ErrRefused with the bus's reason, not
// "no coordinator answered"; with nobody serving, an operator's call is
// ErrNoCoordinator.
func TestCallWithNodeCredsSaysRefused(t *testing.T) {
	sb := testutil.NewSecureBus(t)
	srv, err := busserver.StartServer(busserver.ServerConfig{Name: "api-test", Port: -1, StoreDir: t.TempDir(), Security: sb.Security(t)}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	urls := []string{srv.ClientURL()}
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	nodeNC, err := sb.Connect(t, urls, auth.RoleNode, "vast-1", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer nodeNC.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = api.Client{NC: nodeNC}.Call(ctx, api.OpStatus, nil, nil)
	if !errors.Is(err, api.ErrRefused) || errors.Is(err, api.ErrNoCoordinator) {
		t.Fatalf("node creds: %v, want ErrRefused", err)
	}
	adminNC, err := sb.Connect(t, urls, auth.RoleAdmin, "test-admin", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer adminNC.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := sb.Client(t, adminNC).Call(ctx2, api.OpStatus, nil, nil); !errors.Is(err, api.ErrNoCoordinator) {
		t.Fatalf("admin with no coordinator: %v, want ErrNoCoordinator", err)
	}
}
