// Package fakeapi holds what the stateful HTTP cloud fakes (vastfake,
// runpodfake, lambdafake, vultrfake, hetznerfake) share: fault injection, a call log, and a clock. Each fake
// renders faults in its own cloud's wire format through a Renderer.
package fakeapi

import (
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// FaultKind is a kind of injected API failure.
type FaultKind string

// Fault kinds.
const (
	RateLimit   FaultKind = "rate_limit"   // 429 in the cloud's format
	ServerError FaultKind = "server_error" // 5xx (Fault.Status, default 500)
	Timeout     FaultKind = "timeout"      // no answer until the client gives up (or Fault.Delay)
	Malformed   FaultKind = "malformed"    // 200 with a body that is not valid for the call
	AuthError   FaultKind = "auth_error"   // 401 in the cloud's format
)

// Fault describes failures to inject into matching requests.
type Fault struct {
	Kind FaultKind
	// Count is how many matching requests fail: 0 means 1, negative means
	// every matching request until ClearFaults.
	Count int
	// Method ("GET", "PUT", ..., any case) and Path filter the requests
	// hit; empty matches all. Path is a prefix of the URL path, or, when it
	// contains '*', a path.Match pattern ("/v2/instances/*/halt").
	Method string
	Path   string
	// AfterApply makes the fake carry out the request first and then answer
	// with the fault: the mutation happened but its reply was lost.
	AfterApply bool
	// Status for ServerError (default 500).
	Status int
	// RetryAfter for RateLimit, sent as a Retry-After header by clouds that
	// send one (not Vast).
	RetryAfter time.Duration
	// Body for Malformed replaces the fake's default broken body (e.g. to
	// send a field with the wrong type).
	Body string
	// Delay bounds a Timeout: the answer (a 504) comes after Delay if the
	// client is still waiting (default 30s).
	Delay time.Duration
}

// Call is one request seen by a fake. It is logged when the request arrives;
// Status is filled in once the answer is written.
type Call struct {
	Method string
	Path   string
	Query  string
	Status int       // status answered (0 if the client went away first)
	Fault  FaultKind // injected fault, "" if none
	At     time.Time
}

// Mutating reports whether the call could change state (not GET/HEAD).
func (c Call) Mutating() bool { return c.Method != http.MethodGet && c.Method != http.MethodHead }

// Renderer writes fault f in a cloud's own format. Timeout is handled by the
// Harness; the renderer is called for RateLimit, ServerError, Malformed and
// AuthError.
type Renderer func(w http.ResponseWriter, r *http.Request, f Fault)

// Harness provides fault injection and the call log for one fake.
type Harness struct {
	now func() time.Time

	mu      sync.Mutex
	faults  []*Fault
	calls   []Call
	base    int // absolute index of calls[0] (ResetCalls moves it)
	closing chan struct{}
	once    sync.Once
}

// NewHarness returns a Harness using now as its clock (time.Now when nil).
func NewHarness(now func() time.Time) *Harness {
	if now == nil {
		now = time.Now
	}
	return &Harness{now: now, closing: make(chan struct{})}
}

// Now returns the fake's current time.
func (h *Harness) Now() time.Time { return h.now() }

// Inject adds a fault. Faults are matched in the order they were injected.
func (h *Harness) Inject(f Fault) {
	if f.Count == 0 {
		f.Count = 1
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, &f)
}

// ClearFaults removes every pending fault.
func (h *Harness) ClearFaults() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = nil
}

// Calls returns a copy of the call log.
func (h *Harness) Calls() []Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Call(nil), h.calls...)
}

// ResetCalls empties the call log.
func (h *Harness) ResetCalls() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.base += len(h.calls)
	h.calls = nil
}

// CountCalls counts logged calls with the method ("" any) whose path
// matches pattern (the rules of Fault.Path: a prefix, or a path.Match
// pattern when it contains '*').
func (h *Harness) CountCalls(method, pattern string) int {
	n := 0
	for _, c := range h.Calls() {
		if (method == "" || strings.EqualFold(c.Method, method)) && PathMatches(pattern, c.Path) {
			n++
		}
	}
	return n
}

// PathMatches reports whether URL path p matches pattern: "" matches all; a
// pattern with '*' is a path.Match pattern; anything else is a prefix.
func PathMatches(pattern, p string) bool {
	if pattern == "" {
		return true
	}
	if strings.Contains(pattern, "*") {
		ok, _ := path.Match(pattern, p)
		return ok
	}
	return strings.HasPrefix(p, pattern)
}

// MutatingCalls returns the logged calls that could change state.
func (h *Harness) MutatingCalls() []Call {
	var out []Call
	for _, c := range h.Calls() {
		if c.Mutating() {
			out = append(out, c)
		}
	}
	return out
}

// Shutdown releases requests held by Timeout faults; call it before closing
// the HTTP server.
func (h *Harness) Shutdown() { h.once.Do(func() { close(h.closing) }) }

func (h *Harness) take(r *http.Request) *Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, f := range h.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		if !PathMatches(f.Path, r.URL.Path) {
			continue
		}
		got := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				h.faults = append(h.faults[:i:i], h.faults[i+1:]...)
			}
		}
		return &got
	}
	return nil
}

func (h *Harness) log(c Call) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, c)
	return len(h.calls) - 1 + h.base
}

func (h *Harness) setStatus(idx, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := idx - h.base; i >= 0 && i < len(h.calls) {
		h.calls[i].Status = status
	}
}

// Wrap returns a handler that logs every request, applies injected faults
// (rendered by render) and otherwise passes the request to next.
func (h *Harness) Wrap(render Renderer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		f := h.take(r)
		call := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, At: h.now()}
		if f != nil {
			call.Fault = f.Kind
		}
		// Logged on arrival, so a client that gave up already sees it.
		idx := h.log(call)
		defer func() { h.setStatus(idx, rec.status) }()
		if f == nil {
			next.ServeHTTP(rec, r)
			return
		}
		if f.AfterApply {
			next.ServeHTTP(&discard{header: http.Header{}}, r)
		}
		if f.Kind == Timeout {
			d := f.Delay
			if d <= 0 {
				d = 30 * time.Second
			}
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-r.Context().Done():
				return
			case <-h.closing:
				return
			case <-t.C:
				rec.WriteHeader(http.StatusGatewayTimeout)
				return
			}
		}
		render(rec, r, *f)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BearerOrQueryKey reports whether r carries key as "Authorization: Bearer
// key" or, when allowQuery, as ?api_key=key.
func BearerOrQueryKey(r *http.Request, key string, allowQuery bool) bool {
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") && strings.TrimPrefix(a, "Bearer ") == key {
		return true
	}
	return allowQuery && r.URL.Query().Get("api_key") == key
}
