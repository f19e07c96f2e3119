// Package providertest has helpers for testing providers.Provider
// implementations against their fakes: polling with deadlines, a full
// lifecycle check, an instant clock for the resilience layer and a log sink
// that tests can search for leaked secrets.
package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// Eventually polls cond every 10ms until it returns true or timeout passes;
// then it fails the test with the last message cond gave.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for {
		var ok bool
		ok, msg = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitState polls Get until the instance is in state want.
func WaitState(t testing.TB, p providers.Provider, id string, want providers.State, timeout time.Duration) providers.Instance {
	t.Helper()
	var last providers.Instance
	Eventually(t, timeout, func() (bool, string) {
		in, err := p.Get(context.Background(), id)
		if err != nil {
			return false, fmt.Sprintf("Get(%s): %v", id, err)
		}
		last = in
		return in.State == want, fmt.Sprintf("%s is %s (raw %q), want %s", id, in.State, in.RawState, want)
	})
	return last
}

// WaitGone polls Get until it answers ErrNotFound (or a terminated state).
func WaitGone(t testing.TB, p providers.Provider, id string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() (bool, string) {
		in, err := p.Get(context.Background(), id)
		if errors.Is(err, providers.ErrNotFound) {
			return true, ""
		}
		if err == nil && in.State == providers.StateTerminated {
			return true, ""
		}
		return false, fmt.Sprintf("Get(%s) = %s, %v; want gone", id, in.State, err)
	})
}

// Lifecycle drives a running instance through list → stop → stopped → start
// → running → terminate → gone → terminate again, skipping stop/start when
// the cloud cannot (then it checks they answer ErrUnsupported).
func Lifecycle(t *testing.T, p providers.Provider, id string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	list, err := p.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	found := false
	for _, in := range list {
		if in.ID == id {
			found = true
			if in.Provider != p.Name() {
				t.Errorf("instance %s has Provider %q, want %q", id, in.Provider, p.Name())
			}
		}
	}
	if !found {
		t.Fatalf("List does not contain %s (%d instances)", id, len(list))
	}
	WaitState(t, p, id, providers.StateRunning, timeout)

	if p.Capabilities().CanStop {
		if err := p.Stop(ctx, id); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		WaitState(t, p, id, providers.StateStopped, timeout)
		if err := p.Start(ctx, id); err != nil {
			t.Fatalf("Start: %v", err)
		}
		WaitState(t, p, id, providers.StateRunning, timeout)
	} else {
		if err := p.Stop(ctx, id); !errors.Is(err, providers.ErrUnsupported) {
			t.Errorf("Stop on a cloud without stop: %v, want ErrUnsupported", err)
		}
		if err := p.Start(ctx, id); !errors.Is(err, providers.ErrUnsupported) {
			t.Errorf("Start on a cloud without start: %v, want ErrUnsupported", err)
		}
	}

	if err := p.Terminate(ctx, id); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	WaitGone(t, p, id, timeout)
	if err := p.Terminate(ctx, id); err != nil {
		t.Fatalf("Terminate of a gone instance must succeed: %v", err)
	}
	list, err = p.List(ctx)
	if err != nil {
		t.Fatalf("List after terminate: %v", err)
	}
	for _, in := range list {
		if in.ID == id && in.State != providers.StateTerminated {
			t.Errorf("terminated instance %s still listed as %s", id, in.State)
		}
	}
}

// InstantClock is a providers.Clock whose Sleep returns at once (recording
// the duration) and whose Now is the wall clock: retries against a fake HTTP
// server then take no time.
type InstantClock struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

// Now returns time.Now().
func (c *InstantClock) Now() time.Time { return time.Now() }

// Sleep records d and returns at once (or ctx.Err()).
func (c *InstantClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	return nil
}

// Sleeps returns the recorded sleeps.
func (c *InstantClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// FastPolicy is a resilience policy for tests: 3 attempts, no real waiting,
// the given per-attempt timeout, and a breaker that does not get in the way.
func FastPolicy(clock *InstantClock, callTimeout time.Duration) providers.Policy {
	return providers.Policy{
		MaxAttempts:      3,
		BaseDelay:        10 * time.Millisecond,
		MaxDelay:         100 * time.Millisecond,
		CallTimeout:      callTimeout,
		BreakerThreshold: 100,
		Clock:            clock,
	}
}

// LogBuffer is a goroutine-safe sink for a zerolog.Logger.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a debug-level logger writing into b.
func (b *LogBuffer) Logger() zerolog.Logger {
	return zerolog.New(b).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}
