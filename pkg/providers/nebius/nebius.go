// Package nebius implements providers.Provider for Nebius AI Cloud.
//
// Nebius exposes gRPC only and its Go SDK (github.com/nebius/gosdk) is not
// available from the module proxy here (docs/provider-apis.md §6, §9), so
// this package drives the official `nebius` CLI with JSON output when it is
// installed, and otherwise serves a read-only inventory from config.
//
// CLI mode (the binary from Options.Binary, else "nebius" on $PATH):
//
//	List       nebius compute instance list --parent-id <project> [--page-size N] [--page-token T] --format json
//	           -> {"items":[Instance…],"next_page_token":"…"}; pages followed until the token is empty
//	Get        nebius compute instance get --id <id> --format json -> Instance
//	Start      nebius compute instance start --id <id> --format json   (skipped when running/starting)
//	Stop       nebius compute instance stop --id <id> --format json    (skipped when stopped/stopping)
//	Terminate  nebius compute instance delete --id <id> --format json  ("not found" -> success)
//	Launch     nebius compute instance create --file <0600 request file> --async --format json (launch.go)
//
// Mutations run without --async (unless Options.Async), so the CLI returns
// once the operation has finished and its exit status is the outcome. Every
// invocation is bounded by the context and by Options.Timeout /
// Options.MutationTimeout; a CLI that hangs is killed. A non-zero exit is
// classified from its stderr (gRPC status words such as NotFound,
// PermissionDenied, ResourceExhausted, Unavailable); output that is not the
// documented JSON is KindInvalid. The CLI authenticates with its own profile
// (or NEBIUS_IAM_TOKEN passed through Options.Env); no secret is logged, and
// values from Options.Env are redacted from error text.
//
// Config mode (no CLI): List/Get return Options.Static; Start/Stop/Terminate
// fail with providers.ErrNotConfigured (wrapped) and say why.
//
// Prices: the Nebius API carries no price; Options.Prices supplies them
// (Source "config"), else the price is unknown. Billing facts: per second;
// a stopped VM's compute is not billed (disks are), so BillsWhileStopped is
// false. Preemptible VMs (spec.preemptible) get about 60 s notice; they are
// labelled LabelPreemptible and a preemptible VM found STOPPED without a stop
// request is reported as StatePreempted.
package nebius

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
)

// Name is the registry key of this provider.
const Name = "nebius"

// Mode says where the inventory comes from.
type Mode string

// Modes.
const (
	ModeCLI    Mode = "cli"    // the nebius CLI is available: full control
	ModeStatic Mode = "static" // inventory from config, read-only
)

// StaticInstance is one config-declared Nebius instance, used when the CLI is
// not available. Zero fields are unknown.
type StaticInstance struct {
	ID        string          `json:"id" yaml:"id"`     // computeinstance-…; required
	Name      string          `json:"name" yaml:"name"` // VM name
	PublicIP  string          `json:"public_ip" yaml:"public_ip"`
	SSHUser   string          `json:"ssh_user" yaml:"ssh_user"` // default Options.SSHUser
	SSHPort   int             `json:"ssh_port" yaml:"ssh_port"` // default 22
	GPUModel  string          `json:"gpu_model" yaml:"gpu_model"`
	GPUCount  int             `json:"gpu_count" yaml:"gpu_count"`
	GPUMemGiB float64         `json:"gpu_mem_gib" yaml:"gpu_mem_gib"` // per GPU, GiB
	CPUs      float64         `json:"cpus" yaml:"cpus"`
	MemoryGiB float64         `json:"memory_gib" yaml:"memory_gib"`
	Region    string          `json:"region" yaml:"region"`
	PerHour   float64         `json:"price_per_hour" yaml:"price_per_hour"` // currency units/hour; 0 with Currency "" = unknown
	Currency  string          `json:"currency" yaml:"currency"`             // default "USD" when PerHour > 0
	State     providers.State `json:"state" yaml:"state"`                   // default unknown: config cannot know
	// Preemptible marks the VM as preemptible (ephemeral, ~60 s notice).
	Preemptible bool `json:"preemptible" yaml:"preemptible"`
}

// Options configures a Provider.
type Options struct {
	// Binary is the nebius CLI path. "" = look "nebius" up on $PATH; if absent,
	// the provider runs in config mode. A set Binary that does not exist is an error.
	Binary string
	// ProjectID is the --parent-id for list (project-…). "" = the CLI profile's default.
	ProjectID string
	// Profile is passed as --profile when set.
	Profile string
	// Timeout bounds one read invocation (list page, get). Default 60 s (the
	// original system's CLI timeout).
	Timeout time.Duration
	// MutationTimeout bounds start/stop/delete, which wait for the operation.
	// Default 10 min.
	MutationTimeout time.Duration
	// Async adds --async to mutations: return once the operation is accepted.
	Async bool
	// PageSize is --page-size for list (0 = CLI default).
	PageSize int
	// Env is extra environment for the CLI (e.g. "NEBIUS_IAM_TOKEN=…").
	// Values are secrets: never logged and redacted from errors.
	Env []string
	// Static is the config inventory used when the CLI is not available.
	Static []StaticInstance
	// Prices maps an instance ID, name, "platform/preset" or platform to its
	// price (per hour). Source is forced to "config".
	Prices map[string]providers.Price
	// SSHUser for endpoints. Default "ubuntu" (Nebius images; original registry).
	SSHUser string
	// SubnetID is the VPC subnet (vpcsubnet-…) of a launched VM's network
	// interface; InstanceSpec.network_interfaces[].subnet_id is required
	// (nebius/api compute/v1/network_interface.proto). "" = Launch refuses.
	SubnetID string
	// ImageFamily is the public image family (e.g. "ubuntu22.04-driverless";
	// nebius compute image list-public) a launch boots when the request names
	// no image. "" = a launch must name one.
	ImageFamily string
	// BootDiskGiB is the boot disk size in GiB when the request gives none.
	// 0 = a launch must give one (it must hold the image; no default is documented).
	BootDiskGiB int
	// Logger receives debug lines about CLI calls (never arguments with secrets).
	Logger *zerolog.Logger
}

// Provider is one Nebius project. Safe for concurrent use.
type Provider struct {
	bin         string
	mode        Mode
	project     string
	profile     string
	timeout     time.Duration
	mutTimeout  time.Duration
	async       bool
	pageSize    int
	env         []string
	secrets     []string
	static      []StaticInstance
	prices      map[string]providers.Price
	sshUser     string
	subnet      string
	imageFamily string
	bootDiskGiB int
	log         zerolog.Logger
}

var _ providers.Provider = (*Provider)(nil)

// New builds a Provider. It looks the CLI up but does not run it.
func New(opts Options) (*Provider, error) {
	p := &Provider{
		project:     opts.ProjectID,
		profile:     opts.Profile,
		timeout:     opts.Timeout,
		mutTimeout:  opts.MutationTimeout,
		async:       opts.Async,
		pageSize:    opts.PageSize,
		env:         append([]string(nil), opts.Env...),
		static:      append([]StaticInstance(nil), opts.Static...),
		prices:      map[string]providers.Price{},
		sshUser:     opts.SSHUser,
		subnet:      opts.SubnetID,
		imageFamily: opts.ImageFamily,
		bootDiskGiB: opts.BootDiskGiB,
		log:         zerolog.Nop(),
	}
	if opts.Logger != nil {
		p.log = opts.Logger.With().Str("provider", Name).Logger()
	}
	if p.timeout <= 0 {
		p.timeout = 60 * time.Second
	}
	if p.mutTimeout <= 0 {
		p.mutTimeout = 10 * time.Minute
	}
	if p.sshUser == "" {
		p.sshUser = "ubuntu"
	}
	for _, kv := range p.env {
		if _, v, ok := strings.Cut(kv, "="); ok && len(v) >= 4 {
			p.secrets = append(p.secrets, v)
		}
	}
	for k, pr := range opts.Prices {
		if pr.PerHour < 0 {
			return nil, fmt.Errorf("nebius: price for %q is negative", k)
		}
		if pr.Currency == "" {
			pr.Currency = "USD"
		}
		pr.Source = "config"
		p.prices[k] = pr
	}
	if p.bootDiskGiB < 0 {
		return nil, fmt.Errorf("nebius: boot disk size %d GiB is negative", p.bootDiskGiB)
	}
	for i, s := range p.static {
		if strings.TrimSpace(s.ID) == "" {
			return nil, fmt.Errorf("nebius: static instance %d (%q) has no id", i, s.Name)
		}
	}
	if opts.Binary != "" {
		bin, err := exec.LookPath(opts.Binary)
		if err != nil {
			return nil, fmt.Errorf("nebius: CLI %q: %w", opts.Binary, err)
		}
		p.bin, p.mode = bin, ModeCLI
	} else if bin, err := exec.LookPath("nebius"); err == nil {
		p.bin, p.mode = bin, ModeCLI
	} else {
		p.mode = ModeStatic
	}
	return p, nil
}

// Name returns "nebius".
func (p *Provider) Name() string { return Name }

// Mode reports whether the CLI drives the provider or the config inventory.
func (p *Provider) Mode() Mode { return p.mode }

// Capabilities: start/stop via the CLI (not in config mode); stopped VMs are
// not billed for compute; on-demand VMs are not ephemeral (preemptible ones are
// flagged per instance, see IsPreemptible); NoticeSeconds is the preemption notice (60 s).
func (p *Provider) Capabilities() providers.Capabilities {
	cli := p.mode == ModeCLI
	return providers.Capabilities{CanStop: cli, CanStart: cli, BillsWhileStopped: false, Ephemeral: mesh.Facts(mesh.ProviderNebius).Ephemeral, NoticeSeconds: mesh.Facts(mesh.ProviderNebius).NoticeSeconds()}
}

// List returns every instance of the project (all pages), or the config inventory.
func (p *Provider) List(ctx context.Context) ([]providers.Instance, error) {
	if p.mode == ModeStatic {
		out := make([]providers.Instance, 0, len(p.static))
		for _, s := range p.static {
			out = append(out, p.fromStatic(s))
		}
		return out, nil
	}
	var out []providers.Instance
	token := ""
	seen := map[string]bool{}
	for {
		args := []string{"compute", "instance", "list"}
		if p.project != "" {
			args = append(args, "--parent-id", p.project)
		}
		if p.pageSize > 0 {
			args = append(args, "--page-size", strconv.Itoa(p.pageSize))
		}
		if token != "" {
			args = append(args, "--page-token", token)
		}
		stdout, err := p.run(ctx, "list", p.timeout, args...)
		if err != nil {
			return nil, err
		}
		var page wireList
		if err := decode(stdout, &page); err != nil {
			return nil, p.invalid("list", err)
		}
		for _, in := range page.Items {
			if in.Metadata.ID == "" {
				return nil, p.invalid("list", errors.New("instance without metadata.id"))
			}
			out = append(out, p.toInstance(in))
		}
		if page.NextPageToken == "" {
			return out, nil
		}
		if seen[page.NextPageToken] {
			return nil, p.invalid("list", fmt.Errorf("page token %q repeats", page.NextPageToken))
		}
		seen[page.NextPageToken] = true
		token = page.NextPageToken
	}
}

// Get returns one instance; KindNotFound (errors.Is providers.ErrNotFound) if absent.
func (p *Provider) Get(ctx context.Context, id string) (providers.Instance, error) {
	if err := checkID("get", id); err != nil {
		return providers.Instance{}, err
	}
	if p.mode == ModeStatic {
		for _, s := range p.static {
			if s.ID == id {
				return p.fromStatic(s), nil
			}
		}
		return providers.Instance{}, &providers.Error{Provider: Name, Op: "get", Kind: providers.KindNotFound,
			Err: fmt.Errorf("instance %s is not in the configured inventory: %w", id, providers.ErrNotFound)}
	}
	in, err := p.get(ctx, "get", id)
	if err != nil {
		return providers.Instance{}, err
	}
	return p.toInstance(in), nil
}

func (p *Provider) get(ctx context.Context, op, id string) (wireInstance, error) {
	stdout, err := p.run(ctx, op, p.timeout, "compute", "instance", "get", "--id", id)
	if err != nil {
		return wireInstance{}, err
	}
	var in wireInstance
	if err := decode(stdout, &in); err != nil {
		return wireInstance{}, p.invalid(op, err)
	}
	if in.Metadata.ID == "" {
		return wireInstance{}, p.invalid(op, errors.New("instance without metadata.id"))
	}
	return in, nil
}

// Start starts a stopped VM. A VM that is running or starting is left alone.
func (p *Provider) Start(ctx context.Context, id string) error {
	if err := p.mutable("start", id); err != nil {
		return err
	}
	in, err := p.get(ctx, "start", id)
	if err != nil {
		return err
	}
	if st, _ := mapState(in); st == providers.StateRunning || st == providers.StateStarting || st == providers.StatePending {
		return nil
	}
	_, err = p.run(ctx, "start", p.mutTimeout, p.mutArgs("start", id)...)
	return err
}

// Stop stops a VM through the API (never a guest shutdown: Nebius treats that
// as a failure, restarts and keeps billing the VM). A stopped or stopping VM is
// left alone.
func (p *Provider) Stop(ctx context.Context, id string) error {
	if err := p.mutable("stop", id); err != nil {
		return err
	}
	in, err := p.get(ctx, "stop", id)
	if err != nil {
		return err
	}
	switch st, _ := mapState(in); st {
	case providers.StateStopped, providers.StateStopping, providers.StatePreempted:
		return nil
	}
	_, err = p.run(ctx, "stop", p.mutTimeout, p.mutArgs("stop", id)...)
	return err
}

// Terminate deletes a VM. A VM that is gone or already deleting counts as terminated.
func (p *Provider) Terminate(ctx context.Context, id string) error {
	if err := p.mutable("terminate", id); err != nil {
		return err
	}
	in, err := p.get(ctx, "terminate", id)
	if providers.KindOf(err) == providers.KindNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if in.Status != nil && strings.EqualFold(in.Status.State, "DELETING") {
		return nil
	}
	_, err = p.run(ctx, "terminate", p.mutTimeout, p.mutArgs("delete", id)...)
	if providers.KindOf(err) == providers.KindNotFound {
		return nil
	}
	return err
}

func (p *Provider) mutArgs(verb, id string) []string {
	args := []string{"compute", "instance", verb, "--id", id}
	if p.async {
		args = append(args, "--async")
	}
	return args
}

func (p *Provider) mutable(op, id string) error {
	if err := checkID(op, id); err != nil {
		return err
	}
	if p.mode == ModeStatic {
		return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Code: "no_cli",
			Err: fmt.Errorf("cannot %s %s: the nebius CLI is not installed, so the inventory comes from config and is read-only (install the CLI or set the binary path): %w",
				op, id, providers.ErrNotConfigured)}
	}
	return nil
}

func checkID(op, id string) error {
	if strings.TrimSpace(id) == "" || strings.HasPrefix(id, "-") || strings.ContainsAny(id, " \t\n\x00") {
		return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("invalid instance id %q", id)}
	}
	return nil
}

func (p *Provider) fromStatic(s StaticInstance) providers.Instance {
	out := providers.Instance{
		ID: s.ID, Provider: Name, Name: s.Name, State: s.State, RawState: "config",
		GPUModel: providers.NormalizeGPU(s.GPUModel), GPUCount: s.GPUCount, GPUMemGiB: s.GPUMemGiB,
		CPUs: s.CPUs, MemoryGiB: s.MemoryGiB, Region: s.Region, PublicIP: stripCIDR(s.PublicIP),
	}
	if out.State == "" {
		out.State = providers.StateUnknown
	}
	if out.PublicIP != "" {
		user, port := s.SSHUser, s.SSHPort
		if user == "" {
			user = p.sshUser
		}
		if port == 0 {
			port = 22
		}
		out.SSH = []providers.SSHEndpoint{{Kind: providers.EndpointDirect, Host: out.PublicIP, Port: port, User: user}}
	}
	if s.Preemptible {
		out.Labels = map[string]string{LabelPreemptible: "true"}
		out.Interruptible = true
	}
	switch {
	case s.PerHour > 0 || s.Currency != "":
		cur := s.Currency
		if cur == "" {
			cur = "USD"
		}
		out.Price = providers.Price{PerHour: s.PerHour, Currency: cur, Source: "config"}
	default:
		out.Price = p.priceFor(s.ID, s.Name, "", "")
	}
	return out
}

// decode parses CLI output strictly enough to reject garbage: exactly one JSON
// object, nothing but whitespace after it.
func decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("CLI output is not the documented JSON: %w", err)
	}
	if dec.More() {
		return errors.New("CLI output has trailing data after the JSON object")
	}
	return nil
}

func (p *Provider) invalid(op string, err error) error {
	return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid, Err: err}
}

// run executes the CLI with --format json (and --profile) and returns stdout.
func (p *Provider) run(ctx context.Context, op string, timeout time.Duration, args ...string) ([]byte, error) {
	args = append(args, "--format", "json")
	if p.profile != "" {
		args = append(args, "--profile", p.profile)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, p.bin, args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitWriter{buf: &stdout, max: 64 << 20}
	cmd.Stderr = &limitWriter{buf: &stderr, max: 64 << 10}
	start := time.Now()
	err := cmd.Run()
	p.log.Debug().Str("op", op).Strs("cmd", args[:min(3, len(args))]).Dur("took", time.Since(start)).Err(err).Msg("nebius cli")
	if err == nil {
		return stdout.Bytes(), nil
	}
	pe := &providers.Error{Provider: Name, Op: op}
	var ee *exec.ExitError
	switch {
	case cctx.Err() != nil:
		pe.Kind = providers.KindTransient
		if ctx.Err() != nil {
			pe.Err = fmt.Errorf("nebius CLI interrupted: %w", ctx.Err())
		} else {
			pe.Err = fmt.Errorf("nebius CLI did not finish within %s: %w", timeout, context.DeadlineExceeded)
		}
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
		pe.Kind = providers.KindNotSent
		pe.Err = fmt.Errorf("nebius CLI %s: %w (%v)", p.bin, providers.ErrNotConfigured, err)
	case errors.As(err, &ee):
		msg := p.redact(strings.TrimSpace(stderr.String()))
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		pe.Kind, pe.Code = classifyStderr(msg)
		pe.Err = fmt.Errorf("nebius CLI exited with status %d: %s", ee.ExitCode(), msg)
	default:
		pe.Kind = providers.KindNotSent
		pe.Err = fmt.Errorf("nebius CLI could not be started: %w", err)
	}
	return nil, pe
}

// grpcNotFound matches the gRPC status NotFound as the CLI prints it
// ("rpc error: code = NotFound desc = …", or the canonical NOT_FOUND).
var grpcNotFound = regexp.MustCompile(`(?i)\bcode\s*[=:]\s*NotFound\b|\bNOT_FOUND\b`)

// classifyStderr maps the CLI's error text to an ErrorKind. The CLI reports
// gRPC statuses ("rpc error: code = NotFound desc = …"); plain phrases are
// matched too. Unknown failures are KindTransient: the outcome of a mutation
// is then unknown and the caller must re-read state before retrying.
func classifyStderr(msg string) (providers.ErrorKind, string) {
	m := strings.ToLower(msg)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(m, w) {
				return true
			}
		}
		return false
	}
	switch {
	case grpcNotFound.MatchString(msg):
		// Only the gRPC status is a real not-found: "profile not found" or
		// "no such file" from the CLI itself says nothing about the VM.
		return providers.KindNotFound, "NotFound"
	case has("unauthenticated", "permissiondenied", "permission_denied", "permission denied", "unauthorized", "forbidden"):
		return providers.KindAuth, "PermissionDenied"
	case has("resourceexhausted", "resource_exhausted", "too many requests", "rate limit", "toomanyrequests"):
		return providers.KindRateLimited, "ResourceExhausted"
	case has("failedprecondition", "failed_precondition", "aborted", "alreadyexists", "already exists"):
		return providers.KindConflict, "FailedPrecondition"
	case has("invalidargument", "invalid_argument", "unknown flag", "unknown command", "invalid argument"):
		return providers.KindInvalid, "InvalidArgument"
	}
	return providers.KindTransient, ""
}

func (p *Provider) redact(s string) string {
	for _, v := range p.secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// limitWriter keeps at most max bytes and drops the rest.
type limitWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *limitWriter) Write(b []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		if len(b) > room {
			w.buf.Write(b[:room])
		} else {
			w.buf.Write(b)
		}
	}
	return len(b), nil
}
