// Package nebiusfake is a fake of the `nebius` CLI's compute-instance commands,
// for tests and the demo mode. State lives in a JSON file so that separate
// CLI invocations (separate processes) share it.
//
// It answers, with the documented JSON shapes (nebius.compute.v1.Instance in
// snake_case, docs/provider-apis.md §6):
//
//	nebius compute instance list [--parent-id P] [--page-size N] [--page-token T] --format json
//	    -> {"items":[…],"next_page_token":"…"}
//	nebius compute instance get --id ID --format json      -> {metadata, spec, status}
//	nebius compute instance start|stop|delete --id ID [--async] --format json
//	    -> an operation {id, description, created_at, finished_at, resource_id, status}
//	nebius compute platform list --parent-id P [--page-size N] [--page-token T] --format json
//	    -> {"items":[Platform…],"next_page_token":"…"} (SeedPlatforms)
//	nebius compute instance create --file F [--async] --format json
//	    F holds a CreateInstanceRequest {metadata, spec} (proto field names,
//	    unknown fields refused); checked against instance.proto's validation
//	    rules; a name already used in the project is AlreadyExists.
//	    -> with --async the operation at once; without, the instance once
//	       it is RUNNING (as published scripts read .metadata.id from it)
//
// Errors go to stderr as the CLI prints gRPC statuses ("rpc error: code =
// NotFound desc = …") with exit status 1; bad usage exits 2.
//
// cloud_init_user_data is sensitive in the API (instance.proto
// "(sensitive) = true"): the fake keeps it out of get/list output and
// serves it to tests through UserData.
//
// States move with time: create puts the VM in CREATING and RUNNING after
// StepDelay; start puts the VM in STARTING and RUNNING after
// StepDelay; stop: STOPPING then STOPPED; delete: DELETING then gone. Without
// --async the command waits until the operation is done (as the CLI does).
// Preempt simulates a preemption (preemptible VM -> STOPPED, spec.stopped false).
//
// Using it: New(dir, opts) writes the state file; Seed adds VMs; WriteWrapper
// writes an executable script that runs a program with EnvState set, where the
// program calls RunIfInvoked (or Main) first thing: a test binary's TestMain,
// or the fakenebius command in ../internal/fakenebius.
package nebiusfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// EnvState names the environment variable that points the fake CLI at its state file.
const EnvState = "RINGMESH_FAKENEBIUS_STATE"

// Wire types (snake_case as the CLI prints protobuf JSON).

// Instance is nebius.compute.v1.Instance.
type Instance struct {
	Metadata Metadata `json:"metadata"`
	Spec     Spec     `json:"spec"`
	Status   *Status  `json:"status"`
}

// Metadata is nebius.common.v1.ResourceMetadata.
type Metadata struct {
	ID              string            `json:"id"`
	ParentID        string            `json:"parent_id"`
	Name            string            `json:"name"`
	ResourceVersion string            `json:"resource_version"` // int64 rendered as a string
	CreatedAt       string            `json:"created_at"`
	UpdatedAt       string            `json:"updated_at"`
	Labels          map[string]string `json:"labels"`
}

// Spec is the part of InstanceSpec the fake keeps.
type Spec struct {
	Resources      Resources    `json:"resources"`
	Preemptible    *Preemptible `json:"preemptible,omitempty"`
	RecoveryPolicy string       `json:"recovery_policy,omitempty"`
	Stopped        bool         `json:"stopped"`
	Hostname       string       `json:"hostname,omitempty"`
}

// Resources is {platform, preset}.
type Resources struct {
	Platform string `json:"platform"`
	Preset   string `json:"preset"`
}

// Preemptible is spec.preemptible.
type Preemptible struct {
	OnPreemption string `json:"on_preemption"`
	Priority     int    `json:"priority,omitempty"`
}

// Status is InstanceStatus.
type Status struct {
	State             string             `json:"state"`
	NetworkInterfaces []NetworkInterface `json:"network_interfaces"`
	Reconciling       bool               `json:"reconciling"`
}

// NetworkInterface is status.network_interfaces[].
type NetworkInterface struct {
	Index           int      `json:"index"`
	Name            string   `json:"name"`
	IPAddress       *Address `json:"ip_address"`
	PublicIPAddress *Address `json:"public_ip_address"`
}

// Address carries a CIDR-suffixed address, e.g. "203.0.113.9/32".
type Address struct {
	Address string `json:"address"`
	Static  bool   `json:"static,omitempty"`
}

// FaultKind selects what an injected fault does.
type FaultKind string

// Fault kinds.
const (
	ExitError   FaultKind = "exit_error"  // exit 1, "rpc error: code = Internal …"
	Unavailable FaultKind = "unavailable" // exit 1, "code = Unavailable"
	Garbage     FaultKind = "garbage"     // exit 0 with output that is not JSON
	Hang        FaultKind = "hang"        // sleep until killed
	AuthError   FaultKind = "auth_error"  // exit 1, "code = Unauthenticated"
	RateLimit   FaultKind = "rate_limit"  // exit 1, "code = ResourceExhausted"
	NotFound    FaultKind = "not_found"   // exit 1, "code = NotFound" (the VM vanished meanwhile)
)

// Fault applies to matching invocations.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// Verb filters by command verb: "list", "get", "create", "start", "stop",
	// "delete", "platform-list" ("" = any).
	Verb string `json:"verb"`
	// Count of invocations hit; <= 0 = all until ClearFaults.
	Count int `json:"count"`
	// AfterApply carries the command out first and then fails as Kind
	// says: the answer is lost but the change was made (an unknown outcome).
	AfterApply bool `json:"after_apply,omitempty"`
}

// Call is one recorded invocation.
type Call struct {
	At    time.Time `json:"at"`
	Args  []string  `json:"args"`
	Exit  int       `json:"exit"`
	Fault FaultKind `json:"fault,omitempty"`
	// InputMode is the permission bits of the --file input when the fake
	// read it ("0600"); "" when there was none.
	InputMode string `json:"input_mode,omitempty"`
}

// Options configures a fake.
type Options struct {
	// ProjectID is the parent of seeded instances. Default "project-e00fake".
	ProjectID string
	// StepDelay is how long STARTING/STOPPING/DELETING last. Default 30 ms.
	StepDelay time.Duration
}

type transition struct {
	At     time.Time `json:"at"`
	State  string    `json:"state"`
	Remove bool      `json:"remove,omitempty"`
}

type record struct {
	Instance Instance     `json:"instance"`
	Next     []transition `json:"next,omitempty"`
	// UserData is spec.cloud_init_user_data of a created VM (never printed).
	UserData string `json:"user_data,omitempty"`
	// BootDisk is the created VM's boot_disk as the request gave it.
	BootDisk json.RawMessage `json:"boot_disk,omitempty"`
}

type state struct {
	Options struct {
		ProjectID string        `json:"project_id"`
		StepDelay time.Duration `json:"step_delay"`
	} `json:"options"`
	Seq       int        `json:"seq"`
	Records   []*record  `json:"records"`
	Platforms []Platform `json:"platforms,omitempty"`
	Faults    []Fault    `json:"faults"`
	Calls     []Call     `json:"calls"`
}

// Fake is a handle on one fake CLI state file.
type Fake struct {
	path string
}

// New creates the state file in dir (e.g. t.TempDir()).
func New(dir string, opts Options) (*Fake, error) {
	if opts.ProjectID == "" {
		opts.ProjectID = "project-e00fake"
	}
	if opts.StepDelay <= 0 {
		opts.StepDelay = 30 * time.Millisecond
	}
	f := &Fake{path: filepath.Join(dir, "fakenebius-state.json")}
	var st state
	st.Options.ProjectID = opts.ProjectID
	st.Options.StepDelay = opts.StepDelay
	if err := writeState(f.path, &st); err != nil {
		return nil, err
	}
	return f, nil
}

// StatePath is the state file (the value of EnvState for the CLI).
func (f *Fake) StatePath() string { return f.path }

// WriteWrapper writes an executable shell script named "nebius" in dir that
// runs exe with EnvState pointing at this fake, and returns its path; hand it
// to nebius.Options.Binary. exe must call RunIfInvoked (or Main) at start.
func (f *Fake) WriteWrapper(dir, exe string) (string, error) {
	p := filepath.Join(dir, "nebius")
	// GORACE: a -race test binary otherwise sleeps 1 s at exit (atexit_sleep_ms).
	script := fmt.Sprintf("#!/bin/sh\nGORACE=\"${GORACE:+$GORACE }atexit_sleep_ms=0\" %s=%s exec %s \"$@\"\n",
		EnvState, shellQuote(f.path), shellQuote(exe))
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		return "", err
	}
	return p, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// SeedInstance describes a VM to add; zero fields get defaults.
type SeedInstance struct {
	ID          string // default computeinstance-e00fake<n>
	Name        string // default vm-<n>
	Platform    string // default gpu-h100-sxm
	Preset      string // default 1gpu-16vcpu-200gb
	State       string // default RUNNING
	PublicIP    string // default 203.0.113.<n>; "none" = no public address
	Preemptible bool
	Labels      map[string]string
}

// Seed adds VMs and returns their IDs.
func (f *Fake) Seed(seeds ...SeedInstance) ([]string, error) {
	var ids []string
	err := f.update(func(st *state) error {
		now := time.Now().UTC()
		for _, s := range seeds {
			st.Seq++
			if s.ID == "" {
				s.ID = fmt.Sprintf("computeinstance-e00fake%04d", st.Seq)
			}
			if s.Name == "" {
				s.Name = fmt.Sprintf("vm-%d", st.Seq)
			}
			if s.Platform == "" {
				s.Platform = "gpu-h100-sxm"
			}
			if s.Preset == "" {
				s.Preset = "1gpu-16vcpu-200gb"
			}
			if s.State == "" {
				s.State = "RUNNING"
			}
			if s.Labels == nil {
				s.Labels = map[string]string{}
			}
			in := Instance{
				Metadata: Metadata{ID: s.ID, ParentID: st.Options.ProjectID, Name: s.Name, ResourceVersion: "1",
					CreatedAt: now.Format(time.RFC3339Nano), UpdatedAt: now.Format(time.RFC3339Nano), Labels: s.Labels},
				Spec: Spec{Resources: Resources{Platform: s.Platform, Preset: s.Preset}, Stopped: s.State == "STOPPED",
					RecoveryPolicy: "RECOVER", Hostname: s.Name},
				Status: &Status{State: s.State},
			}
			if s.Preemptible {
				in.Spec.Preemptible = &Preemptible{OnPreemption: "STOP"}
				in.Spec.RecoveryPolicy = "FAIL"
			}
			ni := NetworkInterface{Index: 0, Name: "eth0", IPAddress: &Address{Address: fmt.Sprintf("10.0.0.%d/32", st.Seq%250+1)}}
			if s.PublicIP != "none" {
				ip := s.PublicIP
				if ip == "" {
					ip = fmt.Sprintf("203.0.113.%d", st.Seq%250+1)
				}
				ni.PublicIPAddress = &Address{Address: ip + "/32"}
			}
			in.Status.NetworkInterfaces = []NetworkInterface{ni}
			st.Records = append(st.Records, &record{Instance: in})
			ids = append(ids, s.ID)
		}
		return nil
	})
	return ids, err
}

// Instance returns the current state of a VM (transitions applied).
func (f *Fake) Instance(id string) (Instance, bool, error) {
	var out Instance
	var ok bool
	err := f.update(func(st *state) error {
		if r := st.find(id); r != nil {
			out, ok = r.Instance, true
		}
		return nil
	})
	return out, ok, err
}

// UserData returns the cloud-init user data a created VM was given.
func (f *Fake) UserData(id string) (string, bool, error) {
	var out string
	var ok bool
	err := f.update(func(st *state) error {
		if r := st.find(id); r != nil {
			out, ok = r.UserData, true
		}
		return nil
	})
	return out, ok, err
}

// BootDisk returns the boot_disk JSON a created VM was given.
func (f *Fake) BootDisk(id string) (json.RawMessage, bool, error) {
	var out json.RawMessage
	var ok bool
	err := f.update(func(st *state) error {
		if r := st.find(id); r != nil {
			out, ok = r.BootDisk, true
		}
		return nil
	})
	return out, ok, err
}

// Platform is nebius.compute.v1.Platform (platform.proto): a VM type of the
// project's region and its presets.
type Platform struct {
	Metadata PlatformMetadata `json:"metadata"`
	Spec     PlatformSpec     `json:"spec"`
	Status   PlatformStatus   `json:"status"`
}

// PlatformMetadata is the ResourceMetadata part a platform carries.
type PlatformMetadata struct {
	ID       string `json:"id"`
	ParentID string `json:"parent_id"`
	Name     string `json:"name"` // e.g. gpu-h100-sxm
}

// PlatformSpec is PlatformSpec.
type PlatformSpec struct {
	Presets            []Preset `json:"presets"`
	HumanReadableName  string   `json:"human_readable_name,omitempty"`
	GPUMemoryGigabytes int      `json:"gpu_memory_gigabytes,omitempty"`
}

// Preset is a preset of a platform.
type Preset struct {
	Name      string          `json:"name"` // e.g. 1gpu-16vcpu-200gb
	Resources PresetResources `json:"resources"`
}

// PresetResources is PresetResources.
type PresetResources struct {
	VCPUCount       int `json:"vcpu_count"`
	MemoryGibibytes int `json:"memory_gibibytes"`
	GPUCount        int `json:"gpu_count,omitempty"`
}

// PlatformStatus is PlatformStatus.
type PlatformStatus struct {
	AllowedForPreemptibles bool `json:"allowed_for_preemptibles"`
}

// SeedPlatforms sets what "compute platform list" answers. Until it is
// called the fake's project lists no platforms.
func (f *Fake) SeedPlatforms(ps ...Platform) error {
	return f.update(func(st *state) error {
		for i := range ps {
			if ps[i].Metadata.ParentID == "" {
				ps[i].Metadata.ParentID = st.Options.ProjectID
			}
			if ps[i].Metadata.ID == "" {
				ps[i].Metadata.ID = fmt.Sprintf("computeplatform-e00fake%02d", i+1)
			}
		}
		st.Platforms = append([]Platform(nil), ps...)
		return nil
	})
}

// Preempt simulates Compute preempting a preemptible VM: STOPPED with
// spec.stopped still false.
func (f *Fake) Preempt(id string) error {
	return f.update(func(st *state) error {
		r := st.find(id)
		if r == nil {
			return fmt.Errorf("no instance %s", id)
		}
		r.Instance.Status.State = "STOPPED"
		r.Next = nil
		return nil
	})
}

// SetState overwrites a VM's status.state (odd-state tests).
func (f *Fake) SetState(id, s string) error {
	return f.update(func(st *state) error {
		r := st.find(id)
		if r == nil {
			return fmt.Errorf("no instance %s", id)
		}
		r.Instance.Status.State, r.Next = s, nil
		return nil
	})
}

// Inject adds a fault.
func (f *Fake) Inject(fl Fault) error {
	return f.update(func(st *state) error { st.Faults = append(st.Faults, fl); return nil })
}

// ClearFaults removes all faults.
func (f *Fake) ClearFaults() error {
	return f.update(func(st *state) error { st.Faults = nil; return nil })
}

// Calls returns the invocation log.
func (f *Fake) Calls() ([]Call, error) {
	var out []Call
	err := f.update(func(st *state) error { out = append(out, st.Calls...); return nil })
	return out, err
}

// CountCalls counts logged invocations of a verb ("" = any).
func (f *Fake) CountCalls(verb string) (int, error) {
	calls, err := f.Calls()
	n := 0
	for _, c := range calls {
		if verb == "" || verbOf(c.Args) == verb {
			n++
		}
	}
	return n, err
}

func (st *state) find(id string) *record {
	for _, r := range st.Records {
		if r.Instance.Metadata.ID == id {
			return r
		}
	}
	return nil
}

func (st *state) advance(now time.Time) {
	kept := st.Records[:0]
	for _, r := range st.Records {
		removed := false
		for len(r.Next) > 0 && !r.Next[0].At.After(now) {
			t := r.Next[0]
			r.Next = r.Next[1:]
			if t.Remove {
				removed = true
				break
			}
			r.Instance.Status.State = t.State
		}
		if !removed {
			kept = append(kept, r)
		}
	}
	st.Records = kept
}

// update locks the state file, applies due transitions, runs fn and saves.
func (f *Fake) update(fn func(*state) error) error {
	return withState(f.path, fn)
}

func withState(path string, fn func(*state) error) error {
	unlock, err := lock(path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("fake nebius state %s: %w", path, err)
	}
	st.advance(time.Now())
	if err := fn(&st); err != nil {
		return err
	}
	return writeState(path, &st)
}

func writeState(path string, st *state) error {
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lock takes an exclusive lock file (O_EXCL), breaking one older than 10 s
// (left by a killed process).
func lock(p string) (func(), error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		fd, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_ = fd.Close()
			return func() { _ = os.Remove(p) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if fi, statErr := os.Stat(p); statErr == nil && time.Since(fi.ModTime()) > 10*time.Second {
			_ = os.Remove(p)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("fake nebius: state lock %s busy", p)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// RunIfInvoked runs the fake CLI and exits when EnvState is set; otherwise it
// returns at once. Call it first in a TestMain or main.
func RunIfInvoked() {
	if os.Getenv(EnvState) == "" {
		return
	}
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// verbOf names the command: the verb of "compute instance <verb>", or
// "platform-list" for "compute platform list".
func verbOf(args []string) string {
	if len(args) >= 3 && args[0] == "compute" && args[1] == "instance" {
		return args[2]
	}
	if len(args) >= 3 && args[0] == "compute" && args[1] == "platform" && args[2] == "list" {
		return "platform-list"
	}
	return ""
}

// Main runs one CLI invocation against the state file named by EnvState and
// returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	path := os.Getenv(EnvState)
	if path == "" {
		fmt.Fprintf(stderr, "fake nebius: $%s not set\n", EnvState)
		return 2
	}
	verb := verbOf(args)
	flags, err := parseFlags(args)
	if verb == "" || err != nil {
		if err == nil {
			err = fmt.Errorf("unknown command %q", strings.Join(args, " "))
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		_ = withState(path, func(st *state) error {
			st.Calls = append(st.Calls, Call{At: time.Now().UTC(), Args: args, Exit: 2})
			return nil
		})
		return 2
	}
	if flags["format"] != "json" {
		fmt.Fprintln(stderr, "Error: this fake only speaks --format json")
		return 2
	}

	var (
		out    any
		exit   int
		errMsg string
		fault  *Fault
		waitTo time.Time
		mode   string
	)
	if name := flags["file"]; name != "" {
		fi, serr := os.Stat(name)
		b, rerr := os.ReadFile(name)
		if serr != nil || rerr != nil {
			fmt.Fprintf(stderr, "Error: reading --file %s: %v\n", name, errors.Join(serr, rerr))
			return 2
		}
		mode = fmt.Sprintf("%04o", fi.Mode().Perm())
		flags["file-content"] = string(b)
	}
	err = withState(path, func(st *state) error {
		for i := range st.Faults {
			fl := st.Faults[i]
			if fl.Verb != "" && fl.Verb != verb {
				continue
			}
			fc := fl
			fault = &fc
			if fl.Count > 0 {
				st.Faults[i].Count--
				if st.Faults[i].Count == 0 {
					st.Faults = append(st.Faults[:i], st.Faults[i+1:]...)
				}
			}
			break
		}
		if fault == nil || fault.AfterApply {
			out, exit, errMsg, waitTo = st.exec(verb, flags)
		}
		c := Call{At: time.Now().UTC(), Args: args, Exit: exit, InputMode: mode}
		if fault != nil {
			c.Fault = fault.Kind
			c.Exit = faultExit(fault.Kind)
		}
		st.Calls = append(st.Calls, c)
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	if fault != nil {
		return runFault(*fault, stdout, stderr)
	}
	if exit != 0 {
		fmt.Fprintln(stderr, errMsg)
		return exit
	}
	if d := time.Until(waitTo); d > 0 && flags["async"] == "" {
		time.Sleep(d)
	}
	if op, ok := out.(map[string]any); ok && verb == "create" && flags["async"] == "" {
		// Waited for the operation: print the instance it made.
		id, _ := op["resource_id"].(string)
		var in Instance
		found := false
		_ = withState(path, func(st *state) error {
			if r := st.find(id); r != nil {
				in, found = r.Instance, true
			}
			return nil
		})
		if found {
			out = in
		}
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return 0
}

func faultExit(k FaultKind) int {
	if k == Garbage || k == Hang {
		return 0
	}
	return 1
}

func runFault(f Fault, stdout, stderr io.Writer) int {
	switch f.Kind {
	case Garbage:
		fmt.Fprintln(stdout, `{"items": [ {"metadata": garbage`)
		return 0
	case Hang:
		time.Sleep(time.Hour)
		return 0
	case AuthError:
		fmt.Fprintln(stderr, "Error: rpc error: code = Unauthenticated desc = invalid or expired IAM token")
	case RateLimit:
		fmt.Fprintln(stderr, "Error: rpc error: code = ResourceExhausted desc = too many requests")
	case Unavailable:
		fmt.Fprintln(stderr, "Error: rpc error: code = Unavailable desc = connection error")
	case NotFound:
		fmt.Fprintln(stderr, "Error: rpc error: code = NotFound desc = instance not found")
	default:
		fmt.Fprintln(stderr, "Error: rpc error: code = Internal desc = internal error")
	}
	return 1
}

// parseFlags reads "--name value" pairs after "compute instance <verb>";
// --async is a boolean.
func parseFlags(args []string) (map[string]string, error) {
	known := map[string]bool{"id": true, "parent-id": true, "page-size": true, "page-token": true, "format": true, "profile": true, "file": true}
	out := map[string]string{}
	if len(args) < 3 {
		return out, nil
	}
	rest := args[3:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "--") {
			return nil, fmt.Errorf("unexpected argument %q", a)
		}
		name := strings.TrimPrefix(a, "--")
		if name == "async" {
			out["async"] = "true"
			continue
		}
		if !known[name] {
			return nil, fmt.Errorf("unknown flag: --%s", name)
		}
		if i+1 >= len(rest) {
			return nil, fmt.Errorf("flag needs an argument: --%s", name)
		}
		out[name] = rest[i+1]
		i++
	}
	return out, nil
}

func notFound(id string) string {
	return fmt.Sprintf("Error: rpc error: code = NotFound desc = instance %s not found", id)
}

// exec runs one verb against the state; it returns the JSON value to print,
// the exit status, an error text, and when the operation completes.
func (st *state) exec(verb string, fl map[string]string) (any, int, string, time.Time) {
	now := time.Now().UTC()
	step := st.Options.StepDelay
	switch verb {
	case "list":
		if p := fl["parent-id"]; p != "" && p != st.Options.ProjectID {
			return nil, 1, "Error: rpc error: code = PermissionDenied desc = no access to " + p, time.Time{}
		}
		size := len(st.Records)
		if v := fl["page-size"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, 1, "Error: rpc error: code = InvalidArgument desc = bad page_size", time.Time{}
			}
			size = n
		}
		from := 0
		if tok := fl["page-token"]; tok != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
			if err != nil || n < 0 || n > len(st.Records) {
				return nil, 1, "Error: rpc error: code = InvalidArgument desc = bad page_token", time.Time{}
			}
			from = n
		}
		to := from + size
		if to > len(st.Records) {
			to = len(st.Records)
		}
		items := []Instance{}
		for _, r := range st.Records[from:to] {
			items = append(items, r.Instance)
		}
		next := ""
		if to < len(st.Records) {
			next = fmt.Sprintf("page-%d", to)
		}
		return map[string]any{"items": items, "next_page_token": next}, 0, "", time.Time{}
	case "create":
		return st.create(fl)
	case "platform-list":
		// ListPlatformsRequest.parent_id is required (platform_service.proto).
		if p := fl["parent-id"]; p == "" {
			return invalid("parent_id", "value is required")
		} else if p != st.Options.ProjectID {
			return nil, 1, "Error: rpc error: code = PermissionDenied desc = no access to " + p, time.Time{}
		}
		size := len(st.Platforms)
		if v := fl["page-size"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return invalid("page_size", "bad page_size")
			}
			size = n
		}
		from := 0
		if tok := fl["page-token"]; tok != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
			if err != nil || n < 0 || n > len(st.Platforms) {
				return invalid("page_token", "bad page_token")
			}
			from = n
		}
		to := min(from+size, len(st.Platforms))
		next := ""
		if to < len(st.Platforms) {
			next = fmt.Sprintf("page-%d", to)
		}
		return map[string]any{"items": append([]Platform{}, st.Platforms[from:to]...), "next_page_token": next}, 0, "", time.Time{}
	case "get", "start", "stop", "delete":
		id := fl["id"]
		if id == "" {
			return nil, 2, "Error: required flag --id not set", time.Time{}
		}
		r := st.find(id)
		if r == nil {
			return nil, 1, notFound(id), time.Time{}
		}
		if verb == "get" {
			return r.Instance, 0, "", time.Time{}
		}
		cur := r.Instance.Status.State
		done := now.Add(step)
		switch verb {
		case "start":
			if cur != "STOPPED" {
				return nil, 1, "Error: rpc error: code = FailedPrecondition desc = instance is " + cur, time.Time{}
			}
			r.Instance.Spec.Stopped = false
			r.Instance.Status.State = "STARTING"
			r.Next = []transition{{At: done, State: "RUNNING"}}
		case "stop":
			if cur != "RUNNING" && cur != "STARTING" {
				return nil, 1, "Error: rpc error: code = FailedPrecondition desc = instance is " + cur, time.Time{}
			}
			r.Instance.Spec.Stopped = true
			r.Instance.Status.State = "STOPPING"
			r.Next = []transition{{At: done, State: "STOPPED"}}
		case "delete":
			r.Instance.Status.State = "DELETING"
			r.Next = []transition{{At: done, Remove: true}}
		}
		rv, _ := strconv.Atoi(r.Instance.Metadata.ResourceVersion)
		r.Instance.Metadata.ResourceVersion = strconv.Itoa(rv + 1)
		r.Instance.Metadata.UpdatedAt = now.Format(time.RFC3339Nano)
		st.Seq++
		op := map[string]any{
			"id":          fmt.Sprintf("computeoperation-e00fake%04d", st.Seq),
			"description": verb + " instance",
			"created_at":  now.Format(time.RFC3339Nano),
			"created_by":  "serviceaccount-e00fake",
			"finished_at": done.Format(time.RFC3339Nano),
			"resource_id": id,
			"status":      map[string]any{"code": 0},
		}
		return op, 0, "", done
	}
	return nil, 2, "Error: unknown command " + verb, time.Time{}
}

// createRequest is nebius.compute.v1.CreateInstanceRequest as the CLI's
// --file takes it, in proto field names (instance_service.proto,
// instance.proto, disk.proto, network_interface.proto). Decoding refuses
// unknown fields, as the CLI does for a field the message lacks.
type createRequest struct {
	Metadata struct {
		ParentID string            `json:"parent_id"`
		Name     string            `json:"name"`
		Labels   map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountID  string            `json:"service_account_id"`
		Resources         *Resources        `json:"resources"`
		NetworkInterfaces []createInterface `json:"network_interfaces"`
		BootDisk          *createDisk       `json:"boot_disk"`
		CloudInitUserData string            `json:"cloud_init_user_data"`
		Stopped           bool              `json:"stopped"`
		RecoveryPolicy    string            `json:"recovery_policy"`
		Preemptible       *Preemptible      `json:"preemptible"`
		Hostname          string            `json:"hostname"`
	} `json:"spec"`
}

type createInterface struct {
	SubnetID  string `json:"subnet_id"`
	Name      string `json:"name"`
	IPAddress *struct {
		AllocationID string `json:"allocation_id"`
	} `json:"ip_address"`
	PublicIPAddress *struct {
		AllocationID string `json:"allocation_id"`
		Static       bool   `json:"static"`
	} `json:"public_ip_address"`
}

type createDisk struct {
	AttachMode   string `json:"attach_mode"`
	DeviceID     string `json:"device_id"`
	ExistingDisk *struct {
		ID string `json:"id"`
	} `json:"existing_disk"`
	ManagedDisk *struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Spec   *struct {
			SizeBytes         int64  `json:"size_bytes"`
			SizeKibibytes     int64  `json:"size_kibibytes"`
			SizeMebibytes     int64  `json:"size_mebibytes"`
			SizeGibibytes     int64  `json:"size_gibibytes"`
			BlockSizeBytes    int64  `json:"block_size_bytes"`
			Type              string `json:"type"`
			SourceImageID     string `json:"source_image_id"`
			SourceSnapshotID  string `json:"source_snapshot_id"`
			SourceImageFamily *struct {
				ImageFamily string `json:"image_family"`
				ParentID    string `json:"parent_id"`
			} `json:"source_image_family"`
		} `json:"spec"`
	} `json:"managed_disk"`
}

var (
	ifaceNameRe = regexp.MustCompile(`^[0-9a-z][0-9a-z-]*$`)
	hostnameRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$`)
)

func invalid(field, why string) (any, int, string, time.Time) {
	return nil, 1, fmt.Sprintf("Error: rpc error: code = InvalidArgument desc = validation error: %s: %s", field, why), time.Time{}
}

// create makes an instance from the --file request after the checks the
// API documents (buf.validate rules of instance.proto and friends).
func (st *state) create(fl map[string]string) (any, int, string, time.Time) {
	if fl["file"] == "" {
		return nil, 2, "Error: this fake creates only from --file", time.Time{}
	}
	var req createRequest
	dec := json.NewDecoder(strings.NewReader(fl["file-content"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, 1, "Error: parsing --file: " + err.Error(), time.Time{}
	}
	md, sp := req.Metadata, req.Spec
	if md.ParentID == "" {
		md.ParentID = st.Options.ProjectID // the CLI fills it from the profile
	}
	if md.ParentID != st.Options.ProjectID {
		return nil, 1, "Error: rpc error: code = PermissionDenied desc = no access to " + md.ParentID, time.Time{}
	}
	switch {
	case md.Name == "":
		return invalid("metadata.name", "value is required")
	case sp.Resources == nil || sp.Resources.Platform == "":
		return invalid("spec.resources.platform", "value is required")
	case sp.Resources.Preset == "":
		return invalid("spec.resources.size", "exactly one field is required in oneof")
	case len(sp.NetworkInterfaces) == 0 || len(sp.NetworkInterfaces) > 8:
		return invalid("spec.network_interfaces", "value must contain between 1 and 8 items")
	case sp.BootDisk == nil:
		return invalid("spec.boot_disk", "value is required")
	case len(sp.CloudInitUserData) > 32768:
		return invalid("spec.cloud_init_user_data", "value length must be at most 32768 characters")
	case sp.Hostname != "" && !hostnameRe.MatchString(sp.Hostname):
		return invalid("spec.hostname", "value must be a valid hostname")
	case sp.Preemptible != nil && !strings.EqualFold(sp.Preemptible.OnPreemption, "STOP"):
		return invalid("spec.preemptible.on_preemption", "value is required")
	}
	for i, ni := range sp.NetworkInterfaces {
		f := fmt.Sprintf("spec.network_interfaces[%d]", i)
		switch {
		case ni.SubnetID == "":
			return invalid(f+".subnet_id", "value is required")
		case len(ni.Name) < 1 || len(ni.Name) > 60 || !ifaceNameRe.MatchString(ni.Name):
			return invalid(f+".name", "value does not match regex pattern `^[0-9a-z][0-9a-z-]*$`")
		case ni.IPAddress == nil:
			return invalid(f+".ip_address", "value is required")
		}
	}
	bd := sp.BootDisk
	switch m := strings.ToUpper(bd.AttachMode); {
	case m != "READ_ONLY" && m != "READ_WRITE":
		return invalid("spec.boot_disk.attach_mode", "value is required")
	case (bd.ExistingDisk == nil) == (bd.ManagedDisk == nil):
		return invalid("spec.boot_disk.type", "exactly one field is required in oneof")
	case bd.ExistingDisk != nil && bd.ExistingDisk.ID == "":
		return invalid("spec.boot_disk.existing_disk.id", "value is required")
	}
	if mdisk := bd.ManagedDisk; mdisk != nil {
		ds := mdisk.Spec
		sizes := 0
		if ds != nil {
			for _, n := range []int64{ds.SizeBytes, ds.SizeKibibytes, ds.SizeMebibytes, ds.SizeGibibytes} {
				if n != 0 {
					sizes++
				}
			}
		}
		sources := 0
		if ds != nil {
			if ds.SourceImageID != "" {
				sources++
			}
			if ds.SourceSnapshotID != "" {
				sources++
			}
			if ds.SourceImageFamily != nil {
				if ds.SourceImageFamily.ImageFamily == "" {
					return invalid("spec.boot_disk.managed_disk.spec.source_image_family.image_family", "value is required")
				}
				sources++
			}
		}
		switch {
		case mdisk.Name == "":
			return invalid("spec.boot_disk.managed_disk.name", "value is required")
		case ds == nil:
			return invalid("spec.boot_disk.managed_disk.spec", "value is required")
		case sizes != 1:
			return invalid("spec.boot_disk.managed_disk.spec.size", "exactly one field is required in oneof")
		case !map[string]bool{"NETWORK_SSD": true, "NETWORK_HDD": true, "NETWORK_SSD_NON_REPLICATED": true, "NETWORK_SSD_IO_M3": true}[strings.ToUpper(ds.Type)]:
			return invalid("spec.boot_disk.managed_disk.spec.type", "value is required")
		case sources != 1:
			// A boot disk must come from an image (disk.proto DiskSpec.source).
			return invalid("spec.boot_disk.managed_disk.spec.source", "a boot disk needs exactly one source")
		}
	}
	for _, r := range st.Records {
		if r.Instance.Metadata.Name == md.Name {
			return nil, 1, fmt.Sprintf("Error: rpc error: code = AlreadyExists desc = instance with name %q already exists in %s", md.Name, md.ParentID), time.Time{}
		}
	}

	now := time.Now().UTC()
	done := now.Add(st.Options.StepDelay)
	st.Seq++
	id := fmt.Sprintf("computeinstance-e00fake%04d", st.Seq)
	labels := md.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	in := Instance{
		Metadata: Metadata{ID: id, ParentID: md.ParentID, Name: md.Name, ResourceVersion: "1",
			CreatedAt: now.Format(time.RFC3339Nano), UpdatedAt: now.Format(time.RFC3339Nano), Labels: labels},
		Spec: Spec{Resources: *sp.Resources, Preemptible: sp.Preemptible, RecoveryPolicy: sp.RecoveryPolicy,
			Stopped: sp.Stopped, Hostname: sp.Hostname},
		Status: &Status{State: "CREATING"},
	}
	if in.Spec.RecoveryPolicy == "" {
		in.Spec.RecoveryPolicy = "RECOVER"
	}
	for i, ni := range sp.NetworkInterfaces {
		ns := NetworkInterface{Index: i, Name: ni.Name, IPAddress: &Address{Address: fmt.Sprintf("10.0.%d.%d/32", i, st.Seq%250+1)}}
		if ni.PublicIPAddress != nil {
			ns.PublicIPAddress = &Address{Address: fmt.Sprintf("203.0.113.%d/32", st.Seq%250+1), Static: ni.PublicIPAddress.Static}
		}
		in.Status.NetworkInterfaces = append(in.Status.NetworkInterfaces, ns)
	}
	final := "RUNNING"
	if sp.Stopped {
		final = "STOPPED"
	}
	bdJSON, _ := json.Marshal(bd)
	st.Records = append(st.Records, &record{Instance: in, UserData: sp.CloudInitUserData, BootDisk: bdJSON,
		Next: []transition{{At: done, State: final}}})
	st.Seq++
	op := map[string]any{
		"id":          fmt.Sprintf("computeoperation-e00fake%04d", st.Seq),
		"description": "create instance",
		"created_at":  now.Format(time.RFC3339Nano),
		"created_by":  "serviceaccount-e00fake",
		"resource_id": id,
	}
	if fl["async"] == "" {
		op["finished_at"] = done.Format(time.RFC3339Nano)
		op["status"] = map[string]any{"code": 0}
	}
	return op, 0, "", done
}
