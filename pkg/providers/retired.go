package providers

import (
	"context"
	"fmt"
)

// DefaultRetiredReason is the reason Retire records.
const DefaultRetiredReason = "marked retired in config"

// Unwrapper is implemented by provider wrappers (Retire, Resilient) so that
// helpers such as IsRetired can see through them.
type Unwrapper interface {
	Unwrap() Provider
}

// RetiredError is returned by the mutating methods of a retired provider. It
// matches ErrRetired with errors.Is.
type RetiredError struct {
	Provider string
	Op       string // "start", "stop", "terminate"
	Reason   string
}

func (e *RetiredError) Error() string {
	return fmt.Sprintf("%s is retired (%s): %s refused", e.Provider, e.Reason, e.Op)
}

// Is makes errors.Is(err, ErrRetired) true.
func (e *RetiredError) Is(target error) bool { return target == ErrRetired }

// Retire wraps p so that reads (List, Get, Name, Capabilities) pass through
// and every mutation (Start, Stop, Terminate) is refused with a *RetiredError
// without reaching the cloud. A retired cloud is still watched (its instances
// and prices stay visible) but never acted on. Enablement is configuration,
// not code (docs/ARCHITECTURE.md §11.5).
func Retire(p Provider) Provider { return RetireWithReason(p, DefaultRetiredReason) }

// RetireWithReason is Retire with an explicit reason for messages and Status.
func RetireWithReason(p Provider, reason string) Provider {
	if reason == "" {
		reason = DefaultRetiredReason
	}
	return &retired{p: p, reason: reason}
}

// IsRetired reports whether p, or a provider it wraps, was wrapped by Retire.
func IsRetired(p Provider) bool {
	_, ok := RetiredReason(p)
	return ok
}

// RetiredReason returns the retirement reason of p (looking through wrappers
// that implement Unwrapper) and whether p is retired at all.
func RetiredReason(p Provider) (string, bool) {
	for p != nil {
		if r, ok := p.(*retired); ok {
			return r.reason, true
		}
		u, ok := p.(Unwrapper)
		if !ok {
			return "", false
		}
		p = u.Unwrap()
	}
	return "", false
}

type retired struct {
	p      Provider
	reason string
}

func (r *retired) Unwrap() Provider           { return r.p }
func (r *retired) Name() string               { return r.p.Name() }
func (r *retired) Capabilities() Capabilities { return r.p.Capabilities() }

func (r *retired) List(ctx context.Context) ([]Instance, error) { return r.p.List(ctx) }

func (r *retired) Get(ctx context.Context, id string) (Instance, error) { return r.p.Get(ctx, id) }

func (r *retired) Start(context.Context, string) error     { return r.refuse("start") }
func (r *retired) Stop(context.Context, string) error      { return r.refuse("stop") }
func (r *retired) Terminate(context.Context, string) error { return r.refuse("terminate") }

func (r *retired) refuse(op string) error {
	return &RetiredError{Provider: r.p.Name(), Op: op, Reason: r.reason}
}
