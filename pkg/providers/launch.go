package providers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// OpLaunch names the create call in errors, logs and metrics.
const OpLaunch = "launch"

// Request-ID and node markers a launch puts on the instance, in the cloud's
// own mechanism (Lambda and Hetzner labels/tags, Vultr "key=value" tags, the
// container environment on Vast and RunPod). Clients read them back into
// Instance.Labels under these keys, so a retried launch can find the
// instance an earlier, unanswered create made.
const (
	LabelRequestID = "ringmesh-request"
	LabelNode      = "ringmesh-node"
	// EnvRequestID and EnvNode are the environment variables that carry the
	// same facts where the cloud has no labels (Vast, RunPod).
	EnvRequestID = "RINGMESH_REQUEST_ID"
	EnvNode      = "RINGMESH_NODE"
)

// requestIDRe is what a launch request ID may look like: it must fit a
// Hetzner label value, a Vultr tag, a Lambda tag and a KV key.
var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// ValidRequestID checks a launch request ID: 1 to 63 characters, letters,
// digits, '-' and '_', starting with a letter or digit.
func ValidRequestID(id string) error {
	if !requestIDRe.MatchString(id) {
		return fmt.Errorf("request ID %q: want 1-63 letters, digits, '-' or '_', starting with a letter or digit", id)
	}
	return nil
}

// LaunchRequest is one instance to create from an offer.
type LaunchRequest struct {
	// RequestID is the idempotency key: the instance carries it (see
	// LabelRequestID), and a launch with a request ID some instance already
	// carries returns that instance instead of creating another.
	RequestID string `json:"request_id"`
	// Node is the node ID the instance will join as (its name/label).
	Node string `json:"node"`
	// Offer is what to rent: Offer.ID (Vast ask id, RunPod GPU type id,
	// Lambda instance type), Offer.Region, Offer.GPUCount, Offer.Interruptible
	// and Offer.Price (the bid for a Vast interruptible offer).
	Offer Offer `json:"offer"`
	// Image is the container or OS image; "" = the client's default.
	Image string `json:"image,omitempty"`
	// StartupScript is a POSIX shell script run once at first boot (Vast
	// onstart, RunPod docker start command, Lambda user_data). It may carry
	// a one-time enrollment token: clients never log it.
	StartupScript string `json:"-"`
	// Env is extra environment for the startup script (container env on
	// Vast and RunPod; exported at the top of the script elsewhere). Keys
	// are shell identifiers.
	Env map[string]string `json:"-"`
	// DiskGiB is the disk size; 0 = the client's default.
	DiskGiB int `json:"disk_gib,omitempty"`
	// SSHKeyName names an SSH key the cloud holds (Lambda requires exactly one).
	SSHKeyName string `json:"ssh_key_name,omitempty"`
}

var envKeyRe = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,63}$`)

// Validate checks what every client relies on: the request ID, the node
// ID, the offer ID and region shape, the env keys.
func (r LaunchRequest) Validate() error {
	if err := ValidRequestID(r.RequestID); err != nil {
		return err
	}
	if err := mesh.ValidateNodeID(r.Node); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	if r.Offer.ID == "" || len(r.Offer.ID) > 128 || strings.TrimSpace(r.Offer.ID) != r.Offer.ID || strings.ContainsAny(r.Offer.ID, "\t\r\n/\\?#%\"'") {
		return fmt.Errorf("launch: offer ID %q is empty, too long or has characters no cloud uses in an ID", r.Offer.ID)
	}
	if len(r.Offer.Region) > 64 || strings.ContainsAny(r.Offer.Region, "\r\n\"'\\") {
		return fmt.Errorf("launch: region %q is not a region name", r.Offer.Region)
	}
	if len(r.Image) > 256 || strings.ContainsAny(r.Image, " \t\r\n\"'\\") {
		return fmt.Errorf("launch: image %q is not an image reference", r.Image)
	}
	for k, v := range r.Env {
		if !envKeyRe.MatchString(k) {
			return fmt.Errorf("launch: env key %q is not an upper-case shell identifier", k)
		}
		if strings.ContainsAny(v, "\x00\r\n") {
			return fmt.Errorf("launch: env %s holds a control character", k)
		}
	}
	if r.DiskGiB < 0 || r.DiskGiB > 100000 {
		return fmt.Errorf("launch: disk %d GiB out of range", r.DiskGiB)
	}
	return nil
}

// Launcher is the optional capability of a Provider that can create an
// instance. Launch makes one create call and returns the instance as the
// cloud answered it (often still pending, with an ID). It does not look for
// an earlier instance with the same request ID and does not retry: the
// Resilient layer does both (LaunchVia).
type Launcher interface {
	Launch(ctx context.Context, req LaunchRequest) (Instance, error)
}

// LauncherOf finds the Launcher behind p, looking through wrappers. It
// returns the outermost wrapper that launches (Resilient does, Retire
// refuses), so callers get the wrappers' rules.
func LauncherOf(p Provider) (Launcher, bool) {
	for p != nil {
		if l, ok := p.(Launcher); ok {
			if c, ok := p.(interface{ canLaunch() bool }); !ok || c.canLaunch() {
				return l, true
			}
			return nil, false
		}
		u, ok := p.(Unwrapper)
		if !ok {
			break
		}
		p = u.Unwrap()
	}
	return nil, false
}

// FindByRequestID lists p's instances and returns the one carrying the
// launch request ID id (Labels[LabelRequestID]); ok is false when none does.
// A terminated instance counts: a request that made one must not make another.
func FindByRequestID(ctx context.Context, p Provider, id string) (Instance, bool, error) {
	list, err := p.List(ctx)
	if err != nil {
		return Instance{}, false, err
	}
	for _, in := range list {
		if in.Labels[LabelRequestID] == id {
			return in, true, nil
		}
	}
	return Instance{}, false, nil
}

// launchNotApplied says whether a failed create certainly made nothing.
func launchNotApplied(err error) bool {
	if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrRetired) || errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrNotConfigured) {
		return true
	}
	switch KindOf(err) {
	case KindRateLimited, KindNotSent, KindAuth, KindInvalid, KindNotFound, KindConflict:
		return true
	}
	return false
}

// LaunchNotApplied reports whether a failed launch certainly created
// nothing (refused, not sent, rate limited, rejected as invalid), so the
// same request may be sent again. Any other failure leaves the outcome
// unknown: look for the request ID (FindByRequestID) first.
func LaunchNotApplied(err error) bool { return launchNotApplied(err) }

// Launch on a Resilient wrapper: first look for an instance carrying the
// request ID (a previous create whose answer was lost) and return it; else
// create, retrying only on answers that say the create was not applied
// (rate limited, not sent), with a fresh look for the request ID before
// each retry. A transient failure or a timeout leaves the outcome unknown:
// the wrapper looks once more and returns the instance when it is there,
// else the error (never a second create).
func (r *resilient) Launch(ctx context.Context, req LaunchRequest) (Instance, error) {
	l, ok := r.p.(Launcher)
	if !ok {
		if l, ok = LauncherOf(r.p); !ok {
			return Instance{}, &Error{Provider: r.name, Op: OpLaunch, Kind: KindInvalid, Err: fmt.Errorf("%w: no launch API in this client", ErrUnsupported)}
		}
	}
	if err := req.Validate(); err != nil {
		return Instance{}, &Error{Provider: r.name, Op: OpLaunch, Kind: KindInvalid, Err: err}
	}
	if in, found, err := FindByRequestID(ctx, r, req.RequestID); err != nil {
		return Instance{}, fmt.Errorf("%s launch: looking for an instance of request %s first: %w", r.name, req.RequestID, err)
	} else if found {
		return in, nil
	}
	var out Instance
	tries := 0
	err := r.call(ctx, OpLaunch, true, func(ctx context.Context) error {
		tries++
		if tries > 1 {
			if in, found, ferr := FindByRequestID(ctx, r.p, req.RequestID); ferr == nil && found {
				out = in
				return nil
			} else if ferr != nil {
				return ferr
			}
		}
		var err error
		out, err = l.Launch(ctx, req)
		return err
	})
	if err == nil {
		return out, nil
	}
	if launchNotApplied(err) {
		return Instance{}, err
	}
	// Outcome unknown: the create may have been applied.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.pol.CallTimeout)
	defer cancel()
	if in, found, ferr := FindByRequestID(lctx, r, req.RequestID); ferr == nil && found {
		return in, nil
	}
	return Instance{}, err
}

// canLaunch lets LauncherOf skip a Resilient wrapper around a client that
// cannot launch.
func (r *resilient) canLaunch() bool {
	_, ok := LauncherOf(r.p)
	return ok
}

// Launch on a retired provider is refused without reaching the cloud.
func (r *retired) Launch(context.Context, LaunchRequest) (Instance, error) {
	return Instance{}, r.refuse(OpLaunch)
}

// ScriptWithEnv returns script with env exported at its top, for clouds
// that have no container environment (Lambda user_data, Vultr and Hetzner
// cloud-init): a "#!/bin/sh" line, one export per key (sorted, values
// single-quoted), then the script (whose own "#!" line is then a comment).
// Keys must be checked first (LaunchRequest.Validate).
func ScriptWithEnv(env map[string]string, script string) string {
	if len(env) == 0 {
		return script
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	b.WriteString(script)
	return b.String()
}
