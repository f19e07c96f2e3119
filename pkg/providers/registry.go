package providers

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Registry holds the providers of one process, keyed by Provider.Name. It is
// built by the caller (there is no package-level registry) and is safe for
// concurrent use. The zero value is ready to use.
//
// A cloud whose credential is missing is registered with RegisterUnconfigured:
// it then shows up in Names and Status with its reason, and Get answers an
// error wrapping ErrNotConfigured instead of the process crashing or the cloud
// silently disappearing.
type Registry struct {
	mu      sync.RWMutex
	entries map[string]registryEntry
}

type registryEntry struct {
	p      Provider // nil when not configured
	reason error    // why not configured
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register adds p under p.Name(), replacing whatever was registered under that
// name before (configured or not). A retired provider (see Retire) is
// registered like any other; Status reports it as retired. Register panics on
// a nil provider or an empty name: that is a wiring bug, not a runtime state.
func (r *Registry) Register(p Provider) {
	if p == nil {
		panic("providers: Registry.Register(nil)")
	}
	name := p.Name()
	if name == "" {
		panic("providers: Registry.Register: provider with empty name")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = make(map[string]registryEntry)
	}
	r.entries[name] = registryEntry{p: p}
}

// RegisterUnconfigured records that the cloud name is known but cannot be used,
// with the reason (typically the error of ResolveCredential). It replaces a
// previous registration of the same name. A nil reason is recorded as
// ErrNotConfigured.
func (r *Registry) RegisterUnconfigured(name string, reason error) {
	if name == "" {
		panic("providers: Registry.RegisterUnconfigured: empty name")
	}
	if reason == nil {
		reason = ErrNotConfigured
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = make(map[string]registryEntry)
	}
	r.entries[name] = registryEntry{reason: reason}
}

// Get returns the provider registered under name. It returns an error wrapping
// ErrUnknownName when nothing is registered under name, and one wrapping
// ErrNotConfigured (and the recorded reason) when the name was registered as
// not configured.
func (r *Registry) Get(name string) (Provider, error) {
	r.mu.RLock()
	e, ok := r.entries[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("provider %q: %w", name, ErrUnknownName)
	}
	if e.p == nil {
		if errors.Is(e.reason, ErrNotConfigured) {
			return nil, fmt.Errorf("provider %q: %w", name, e.reason)
		}
		return nil, fmt.Errorf("provider %q: %w: %w", name, ErrNotConfigured, e.reason)
	}
	return e.p, nil
}

// Names returns every registered name, configured or not, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns the configured providers (retired ones included), sorted by name.
func (r *Registry) All() []Provider {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.entries))
	for n, e := range r.entries {
		if e.p != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := make([]Provider, 0, len(names))
	for _, n := range names {
		out = append(out, r.entries[n].p)
	}
	return out
}

// Status tells how name is registered. configured is false for an unknown name
// and for a cloud registered with RegisterUnconfigured; reason then says why.
// For a configured, retired provider, retired is true and reason gives the
// retirement reason. For a configured, active provider reason is "".
func (r *Registry) Status(name string) (configured bool, retired bool, reason string) {
	r.mu.RLock()
	e, ok := r.entries[name]
	r.mu.RUnlock()
	switch {
	case !ok:
		return false, false, ErrUnknownName.Error()
	case e.p == nil:
		return false, false, e.reason.Error()
	}
	if why, ok := RetiredReason(e.p); ok {
		return true, true, why
	}
	return true, false, ""
}
