package providers_test

import (
	"context"
	"sync"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// scriptedProvider is a fake Provider whose calls fail as scripted, per op.
type scriptedProvider struct {
	name string

	mu     sync.Mutex
	script map[string][]error
	calls  map[string]int
	// hook runs on every call (outside the lock), e.g. to block or cancel.
	hook func(ctx context.Context, op string) error
}

func newScripted(name string) *scriptedProvider {
	return &scriptedProvider{name: name, script: map[string][]error{}, calls: map[string]int{}}
}

// fail queues errors for op; once they are used up the op succeeds.
func (p *scriptedProvider) fail(op string, errs ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script[op] = append(p.script[op], errs...)
}

func (p *scriptedProvider) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[op]
}

func (p *scriptedProvider) do(ctx context.Context, op string) error {
	p.mu.Lock()
	p.calls[op]++
	var err error
	if q := p.script[op]; len(q) > 0 {
		err, p.script[op] = q[0], q[1:]
	}
	hook := p.hook
	p.mu.Unlock()
	if hook != nil {
		if herr := hook(ctx, op); herr != nil {
			return herr
		}
	}
	return err
}

func (p *scriptedProvider) Name() string { return p.name }
func (p *scriptedProvider) Capabilities() providers.Capabilities {
	return providers.Capabilities{CanStop: true, CanStart: true}
}
func (p *scriptedProvider) List(ctx context.Context) ([]providers.Instance, error) {
	if err := p.do(ctx, providers.OpList); err != nil {
		return nil, err
	}
	return []providers.Instance{{ID: "1", Provider: p.name, State: providers.StateRunning}}, nil
}
func (p *scriptedProvider) Get(ctx context.Context, id string) (providers.Instance, error) {
	if err := p.do(ctx, providers.OpGet); err != nil {
		return providers.Instance{}, err
	}
	return providers.Instance{ID: id, Provider: p.name, State: providers.StateRunning}, nil
}
func (p *scriptedProvider) Start(ctx context.Context, id string) error {
	return p.do(ctx, providers.OpStart)
}
func (p *scriptedProvider) Stop(ctx context.Context, id string) error {
	return p.do(ctx, providers.OpStop)
}
func (p *scriptedProvider) Terminate(ctx context.Context, id string) error {
	return p.do(ctx, providers.OpTerminate)
}

// fakeClock advances only when told to or when something sleeps on it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func perr(kind providers.ErrorKind) error {
	return &providers.Error{Provider: "fake", Op: "x", Kind: kind}
}
