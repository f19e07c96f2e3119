// Package providers defines the one interface through which ringmesh talks to
// every cloud (Vast.ai, RunPod, Lambda Labs, Vultr, Hetzner, Nebius), the
// normalised Instance record, the provider registry and the error kinds that
// the resilience layer uses to decide what may be retried.
//
// Each cloud lives in its own sub-package (pkg/providers/<name>) together with
// a stateful fake of its public API for tests and the demo mode.
package providers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// State is a provider-independent instance state. The provider's own word is
// kept next to it in Instance.RawState.
type State string

// Normalised instance states.
const (
	StatePending  State = "pending"
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
	// StatePaused: suspended with memory kept and the GPU still billed
	// (Vast "frozen"). Not usable, but billable.
	StatePaused     State = "paused"
	StatePreempted  State = "preempted"
	StateTerminated State = "terminated"
	StateError      State = "error"
	StateUnknown    State = "unknown"
)

// EndpointKind says which path an SSH endpoint takes to the instance.
type EndpointKind string

// Endpoint kinds. Vast and RunPod expose both a proxy and a direct endpoint;
// they are kept apart and never mixed (a host of one with the port of the other).
const (
	EndpointDirect EndpointKind = "direct" // public IP and the host port mapped to 22/tcp
	EndpointProxy  EndpointKind = "proxy"  // provider's SSH gateway, e.g. ssh6.vast.ai:19528
)

// SSHEndpoint is one explicit (host, port, user) triple.
type SSHEndpoint struct {
	Kind EndpointKind `json:"kind"`
	Host string       `json:"host"`
	Port int          `json:"port"`
	User string       `json:"user"`
}

// String renders user@host:port (an IPv6 host in brackets: user@[2001:db8::1]:22).
func (e SSHEndpoint) String() string {
	return e.User + "@" + net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// Price is what an instance costs per hour in the provider's currency.
type Price struct {
	PerHour  float64 `json:"per_hour"` // currency units per hour, e.g. USD/hour
	Currency string  `json:"currency"` // ISO 4217, "USD" or "EUR"
	Source   string  `json:"source"`   // where the figure comes from, e.g. "vast:dph_total", "config"
}

// Known reports whether a price was measured (a zero Source means unknown).
func (p Price) Known() bool { return p.Source != "" }

// Instance is a provider's view of one machine, normalised.
type Instance struct {
	ID        string        `json:"id"`       // provider instance ID (Vast contract id, RunPod pod id, ...)
	Provider  string        `json:"provider"` // "vast", "runpod", ...
	Name      string        `json:"name"`     // label / name as the provider shows it
	State     State         `json:"state"`
	RawState  string        `json:"raw_state"` // provider's own state word ("" when null)
	GPUModel  string        `json:"gpu_model"` // normalised (see NormalizeGPU); unknown models keep their raw name
	GPUCount  int           `json:"gpu_count"`
	GPUMemGiB float64       `json:"gpu_mem_gib"` // per GPU, GiB; 0 = unknown
	CPUs      float64       `json:"cpus"`        // vCPUs; 0 = unknown
	MemoryGiB float64       `json:"memory_gib"`  // 0 = unknown
	Region    string        `json:"region"`
	PublicIP  string        `json:"public_ip"`
	SSH       []SSHEndpoint `json:"ssh"`
	Price     Price         `json:"price"`
	// StoragePrice is what the instance costs per hour while stopped (its
	// disk), when the cloud states it (Vast instance.diskHour); unknown
	// otherwise. Clouds that bill a stopped server in full (Vultr, Hetzner)
	// leave it unknown: Price applies.
	StoragePrice Price             `json:"storage_price,omitempty"`
	CreatedAt    time.Time         `json:"created_at"` // zero = unknown
	Labels       map[string]string `json:"labels,omitempty"`
	// Tags are the provider's tags exactly as its API lists them: strings,
	// in order, duplicates kept (Vultr "tags": ["role=gpu", "ringmesh"]).
	// Labels may carry a key=value reading of them; Tags is the fact.
	Tags        []string `json:"tags,omitempty"`
	Interrupted bool     `json:"interrupted,omitempty"` // provider says it was preempted/outbid
	// Interruptible: the instance itself is spot/bid/preemptible (Vast is_bid,
	// RunPod interruptible), independent of whether it has been interrupted.
	Interruptible bool `json:"interruptible,omitempty"`
}

// Endpoint returns the first SSH endpoint of the given kind.
func (i Instance) Endpoint(kind EndpointKind) (SSHEndpoint, bool) {
	for _, e := range i.SSH {
		if e.Kind == kind {
			return e, true
		}
	}
	return SSHEndpoint{}, false
}

// Billable reports whether the instance accrues compute cost in this state,
// given the provider's capabilities (Vultr and Hetzner bill while stopped).
func (i Instance) Billable(c Capabilities) bool {
	switch i.State {
	case StateRunning, StateStarting, StateStopping, StatePaused:
		return true
	case StateStopped, StatePreempted:
		return c.BillsWhileStopped
	}
	return false
}

// Capabilities says what a cloud can do.
type Capabilities struct {
	CanStop           bool `json:"can_stop"`            // false for Lambda (terminate only)
	CanStart          bool `json:"can_start"`           // start a stopped instance
	BillsWhileStopped bool `json:"bills_while_stopped"` // Vultr, Hetzner
	Ephemeral         bool `json:"ephemeral"`           // instances may vanish with little notice by the cloud's nature (mesh.Facts)
	NoticeSeconds     int  `json:"notice_seconds"`      // documented termination notice, seconds (0 = none/unknown; mesh.Facts)
}

// Provider is one cloud account. All methods that do I/O take a context and
// must honour its deadline. Implementations return errors wrapped in *Error so
// callers can tell transient faults from permanent ones.
type Provider interface {
	// Name is the registry key: "vast", "runpod", "lambda", "vultr", "hetzner", "nebius".
	Name() string
	// Capabilities are static facts about the cloud.
	Capabilities() Capabilities
	// List returns every instance of the account (all pages).
	List(ctx context.Context) ([]Instance, error)
	// Get returns one instance; ErrNotFound (wrapped) if it does not exist.
	Get(ctx context.Context, id string) (Instance, error)
	// Start powers a stopped instance on. ErrUnsupported where the cloud cannot.
	Start(ctx context.Context, id string) error
	// Stop powers an instance off without destroying it. ErrUnsupported where the cloud cannot (Lambda).
	Stop(ctx context.Context, id string) error
	// Terminate destroys an instance. Terminating an instance that is already gone succeeds.
	Terminate(ctx context.Context, id string) error
}

// Sentinel errors. Match with errors.Is.
var (
	ErrNotFound      = errors.New("instance not found")
	ErrUnsupported   = errors.New("operation not supported by this provider")
	ErrNotConfigured = errors.New("provider not configured")
	ErrRetired       = errors.New("provider is retired")
	ErrUnknownName   = errors.New("unknown provider")
	ErrCircuitOpen   = errors.New("circuit breaker open")
	// ErrUnconfirmed: the provider accepted a mutation but its answer does
	// not show it applied (Lambda's terminate answering
	// "terminated_instances": []). The caller confirms with Get before it
	// reports the operation done. Comes wrapped in an *Error of KindUnconfirmed.
	ErrUnconfirmed = errors.New("provider accepted the request but its answer does not confirm it")
)

// ErrorKind classifies a failed API call for the retry policy.
type ErrorKind string

// Error kinds.
const (
	KindTransient   ErrorKind = "transient"    // 5xx, timeout, connection reset: outcome of a mutation unknown
	KindRateLimited ErrorKind = "rate_limited" // 429: the request was not applied
	KindNotSent     ErrorKind = "not_sent"     // failed before the request left (dial error): safe to retry
	KindAuth        ErrorKind = "auth"         // 401/403
	KindNotFound    ErrorKind = "not_found"
	KindConflict    ErrorKind = "conflict" // invalid state transition (RunPod 409, ...)
	KindInvalid     ErrorKind = "invalid"  // 4xx other than the above, malformed body
	// KindUnconfirmed: a 2xx answer to a mutation that does not show the
	// mutation applied; not retried (it may have been), confirm with Get.
	KindUnconfirmed ErrorKind = "unconfirmed"
)

// Error is an API failure with enough detail to decide on a retry.
type Error struct {
	Provider   string
	Op         string // "list", "get", "start", "stop", "terminate"
	Kind       ErrorKind
	Status     int           // HTTP status, 0 if none
	Code       string        // provider error code, e.g. "no_such_instance"
	RetryAfter time.Duration // from Retry-After, 0 if absent
	Err        error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Provider, e.Op, e.Kind)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error {
	if e.Kind == KindNotFound && !errors.Is(e.Err, ErrNotFound) {
		return errors.Join(e.Err, ErrNotFound)
	}
	return e.Err
}

// KindOf returns the ErrorKind of err, or "" if err is not an *Error.
func KindOf(err error) ErrorKind {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return ""
}

// hostRe is what an SSH endpoint host may look like: a DNS name or an IPv4
// or IPv6 literal (letters, digits, '.', '-', ':'), at most 253 characters.
var hostRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.:-]{0,251}[A-Za-z0-9])?$`)

// CleanHost trims whitespace from a host string that an API returned and
// checks it against the endpoint-host pattern (DNS name or IP literal), so
// no newline, space or option-like text reaches an ssh config or argv. It
// returns "" and false for anything else (the endpoint is then unknown).
func CleanHost(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || !hostRe.MatchString(s) {
		return "", false
	}
	if strings.Contains(s, ":") && net.ParseIP(s) == nil {
		return "", false
	}
	return s, true
}
