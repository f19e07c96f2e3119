package nebius

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

var _ providers.Launcher = (*Provider)(nil)

// MaxUserDataBytes is the longest cloud-init user data Compute accepts
// (InstanceSpec.cloud_init_user_data, buf.validate max_len 32768; nebius/api
// compute/v1/instance.proto).
const MaxUserDataBytes = 32768

// Patterns every value that reaches the spec file is checked against first.
var (
	// nameRe: a platform or preset name ("gpu-h100-sxm", "1gpu-16vcpu-200gb").
	nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	// imageFamilyRe: a public image family ("ubuntu22.04-driverless").
	imageFamilyRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	// imageIDRe, subnetRe, projectRe: Nebius resource IDs ("computeimage-…",
	// "vpcsubnet-…", "project-…").
	imageIDRe = regexp.MustCompile(`^computeimage-[a-z0-9]{1,60}$`)
	subnetRe  = regexp.MustCompile(`^vpcsubnet-[a-z0-9]{1,60}$`)
	projectRe = regexp.MustCompile(`^project-[a-z0-9]{1,60}$`)
	// hostnameRe is InstanceSpec.hostname's own rule (instance.proto CEL "hostname.valid").
	hostnameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$`)
)

// Wire shape of nebius.compute.v1.CreateInstanceRequest {metadata, spec}
// (nebius/api compute/v1/instance_service.proto, instance.proto, disk.proto,
// network_interface.proto), in proto field names as the CLI's --file input
// takes them. Only the fields a launch sets.
type createRequest struct {
	Metadata createMetadata `json:"metadata"`
	Spec     createSpec     `json:"spec"`
}

type createMetadata struct {
	ParentID string            `json:"parent_id"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
}

type createSpec struct {
	Resources         createResources   `json:"resources"`
	BootDisk          createBootDisk    `json:"boot_disk"`
	NetworkInterfaces []createInterface `json:"network_interfaces"`
	CloudInitUserData string            `json:"cloud_init_user_data,omitempty"`
	Preemptible       *createPreempt    `json:"preemptible,omitempty"`
	Hostname          string            `json:"hostname,omitempty"`
}

type createResources struct {
	Platform string `json:"platform"`
	Preset   string `json:"preset"`
}

type createBootDisk struct {
	AttachMode  string            `json:"attach_mode"` // AttachedDiskSpec.AttachMode
	ManagedDisk createManagedDisk `json:"managed_disk"`
}

// createManagedDisk is ManagedDisk: a disk created with the instance and
// deleted with it.
type createManagedDisk struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Spec   createDiskSpec    `json:"spec"`
}

type createDiskSpec struct {
	SizeGibibytes     int64              `json:"size_gibibytes"`
	Type              string             `json:"type"` // DiskSpec.DiskType
	SourceImageID     string             `json:"source_image_id,omitempty"`
	SourceImageFamily *createImageFamily `json:"source_image_family,omitempty"`
}

type createImageFamily struct {
	ImageFamily string `json:"image_family"`
}

type createInterface struct {
	Name            string    `json:"name"`
	SubnetID        string    `json:"subnet_id"`
	IPAddress       *struct{} `json:"ip_address"`        // {} = allocate a private address
	PublicIPAddress *struct{} `json:"public_ip_address"` // {} = a dynamic public address
}

type createPreempt struct {
	OnPreemption string `json:"on_preemption"` // PreemptibleSpec.PreemptionPolicy; STOP is the only value
}

// wireOperation is the part of nebius.common.v1.Operation a launch reads.
type wireOperation struct {
	ID         string `json:"id"`
	ResourceID string `json:"resource_id"`
}

// UnmarshalJSON: see wireInstance.UnmarshalJSON ("resourceId" or "resource_id").
func (w *wireOperation) UnmarshalJSON(b []byte) error {
	type plain wireOperation
	return decodeProto(b, (*plain)(w))
}

// OfferID is the offer ID a Nebius launch takes: "<platform>:<preset>"
// (spec.resources.platform and .preset, e.g. "gpu-h100-sxm:1gpu-16vcpu-200gb").
// ':' separates them because a launch offer ID may not hold '/'.
func OfferID(platform, preset string) string { return platform + ":" + preset }

// ParseOfferID splits an offer ID made by OfferID and checks both names.
func ParseOfferID(id string) (platform, preset string, err error) {
	platform, preset, ok := strings.Cut(id, ":")
	if !ok || !nameRe.MatchString(platform) || !nameRe.MatchString(preset) {
		return "", "", fmt.Errorf("nebius offer ID %q: want <platform>:<preset>, e.g. gpu-h100-sxm:1gpu-16vcpu-200gb (lower-case letters, digits, '-')", id)
	}
	return platform, preset, nil
}

// Launch creates one VM with
//
//	nebius compute instance create --file <dir>/instance.json --async --format json [--profile P]
//
// The file holds a nebius.compute.v1.CreateInstanceRequest: metadata {parent_id:
// the project, name: the node, labels ringmesh-request and ringmesh-node (read
// back by List into Instance.Labels)}, spec {resources {platform, preset} from
// the offer ID (OfferID), boot_disk {attach_mode READ_WRITE, managed_disk
// {name "<node>-boot", spec {size_gibibytes: req.DiskGiB or
// Options.BootDiskGiB, type NETWORK_SSD, source_image_family {image_family}
// or source_image_id from req.Image or Options.ImageFamily}}},
// network_interfaces [{name eth0, subnet_id Options.SubnetID, ip_address {},
// public_ip_address {}}], cloud_init_user_data: the startup script with
// req.Env exported at its top (providers.ScriptWithEnv; Nebius has no
// instance environment), preemptible {on_preemption STOP} for an
// interruptible offer, hostname: the node when it is a valid hostname}.
//
// The request goes through a file, not flags, because the user data holds
// the one-time enrollment token and argv is readable by every local user
// (/proc/<pid>/cmdline): the file is 0600 in a fresh 0700 directory and
// removed when the CLI has exited. --file is the CLI's documented way to
// give a whole request (nebius/skills compute-provision: "nebius compute
// instance create -f instance.yaml"; YAML input, of which JSON is a subset).
//
// --async makes the CLI return once Compute answered the Create call (an
// operation naming the instance in resource_id) instead of waiting for it to
// finish, so a non-zero exit is the Create call's own answer. Launch then
// reads the instance with get; if that read fails, the instance is returned
// as the request describes it (pending). Errors: see launchKind.
//
// Nebius holds no SSH keys for VMs (keys go in through cloud-init), so a
// request naming one (SSHKeyName) is refused: put the key into the startup
// script.
func (p *Provider) Launch(ctx context.Context, req providers.LaunchRequest) (providers.Instance, error) {
	op := providers.OpLaunch
	cr, err := p.createRequest(req)
	if err != nil {
		return providers.Instance{}, err
	}
	body, err := json.Marshal(cr)
	if err != nil {
		return providers.Instance{}, p.refuse(fmt.Errorf("encoding the create request: %w", err))
	}
	dir, err := os.MkdirTemp("", "ringmesh-nebius-launch-")
	if err != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindNotSent,
			Err: fmt.Errorf("nebius launch: temporary directory for the request file: %w", err)}
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "instance.json")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindNotSent,
			Err: fmt.Errorf("nebius launch: writing the request file: %w", err)}
	}
	stdout, err := p.run(ctx, op, p.mutTimeout, "compute", "instance", "create", "--file", file, "--async")
	if err != nil {
		return providers.Instance{}, scrub(launchKind(err), req.Env, cr.Spec.CloudInitUserData)
	}
	id, in, err := createAnswer(stdout)
	if err != nil {
		// The CLI exited 0: Compute accepted the create, but the answer does
		// not say which instance it made. Not applied is not known.
		return providers.Instance{}, &providers.Error{Provider: Name, Op: op, Kind: providers.KindUnconfirmed,
			Err: fmt.Errorf("%w: create answered without an instance id (%v); look for request %s", providers.ErrUnconfirmed, err, req.RequestID)}
	}
	if in == nil {
		if got, gerr := p.get(ctx, op, id); gerr == nil {
			in = &got
		}
	}
	var out providers.Instance
	if in != nil {
		out = p.toInstance(*in)
	} else {
		out = providers.Instance{ID: id, Provider: Name, Name: req.Node, State: providers.StatePending, RawState: "CREATING",
			Interruptible: req.Offer.Interruptible, GPUModel: req.Offer.GPUModel, Region: req.Offer.Region,
			Labels: map[string]string{providers.LabelRequestID: req.RequestID, providers.LabelNode: req.Node,
				LabelPlatform: cr.Spec.Resources.Platform, LabelPreset: cr.Spec.Resources.Preset}}
		if req.Offer.Interruptible {
			out.Labels[LabelPreemptible] = "true"
		}
	}
	if !out.Price.Known() {
		out.Price = req.Offer.Price
	}
	return out, nil
}

// createRequest checks req against what a Nebius create needs and builds the
// request. Every refusal is KindInvalid: nothing was sent.
func (p *Provider) createRequest(req providers.LaunchRequest) (createRequest, error) {
	if err := req.Validate(); err != nil {
		return createRequest{}, p.refuse(err)
	}
	if p.mode == ModeStatic {
		return createRequest{}, &providers.Error{Provider: Name, Op: providers.OpLaunch, Kind: providers.KindInvalid, Code: "no_cli",
			Err: fmt.Errorf("nebius launch: the nebius CLI is not installed, so this client is read-only (install the CLI or set its path): %w", providers.ErrNotConfigured)}
	}
	if !projectRe.MatchString(p.project) {
		return createRequest{}, p.refuse(fmt.Errorf("needs the project ID (providers.nebius.project, project-…), got %q: the create and the request-ID lookup must name the same project", p.project))
	}
	if !subnetRe.MatchString(p.subnet) {
		return createRequest{}, p.refuse(fmt.Errorf("needs the VPC subnet for the VM's network interface (providers.nebius.subnet, vpcsubnet-…; nebius vpc subnet list), got %q", p.subnet))
	}
	if req.SSHKeyName != "" {
		return createRequest{}, p.refuse(errors.New("nebius keeps no SSH keys for VMs (they go in through cloud-init): leave the SSH key out and put it into the startup script"))
	}
	platform, preset, err := ParseOfferID(req.Offer.ID)
	if err != nil {
		return createRequest{}, p.refuse(err)
	}
	disk := createDiskSpec{Type: "NETWORK_SSD", SizeGibibytes: int64(req.DiskGiB)}
	if disk.SizeGibibytes == 0 {
		disk.SizeGibibytes = int64(p.bootDiskGiB)
	}
	if disk.SizeGibibytes <= 0 {
		return createRequest{}, p.refuse(errors.New("needs a boot disk size: the request's disk size or providers.nebius.boot_disk_gib (no default: it must hold the image)"))
	}
	image := req.Image
	if image == "" {
		image = p.imageFamily
	}
	switch {
	case imageIDRe.MatchString(image):
		disk.SourceImageID = image
	case imageFamilyRe.MatchString(image):
		disk.SourceImageFamily = &createImageFamily{ImageFamily: image}
	case image == "":
		return createRequest{}, p.refuse(errors.New("needs a boot image: the request's image or providers.nebius.image_family (a public image family, nebius compute image list-public; or a computeimage-… ID)"))
	default:
		return createRequest{}, p.refuse(fmt.Errorf("image %q is neither an image family (lower-case letters, digits, '.', '_', '-') nor a computeimage-… ID", image))
	}
	userData := providers.ScriptWithEnv(req.Env, req.StartupScript)
	if len(userData) > MaxUserDataBytes {
		return createRequest{}, p.refuse(fmt.Errorf("startup script with its environment is %d bytes; Compute takes at most %d", len(userData), MaxUserDataBytes))
	}
	labels := map[string]string{providers.LabelRequestID: req.RequestID, providers.LabelNode: req.Node}
	cr := createRequest{
		Metadata: createMetadata{ParentID: p.project, Name: req.Node, Labels: labels},
		Spec: createSpec{
			Resources: createResources{Platform: platform, Preset: preset},
			BootDisk: createBootDisk{AttachMode: "READ_WRITE",
				ManagedDisk: createManagedDisk{Name: req.Node + "-boot", Labels: labels, Spec: disk}},
			NetworkInterfaces: []createInterface{{Name: "eth0", SubnetID: p.subnet, IPAddress: &struct{}{}, PublicIPAddress: &struct{}{}}},
			CloudInitUserData: userData,
		},
	}
	if req.Offer.Interruptible {
		cr.Spec.Preemptible = &createPreempt{OnPreemption: "STOP"}
	}
	if hostnameRe.MatchString(req.Node) {
		cr.Spec.Hostname = req.Node
	}
	return cr, nil
}

func (p *Provider) refuse(err error) error {
	return &providers.Error{Provider: Name, Op: providers.OpLaunch, Kind: providers.KindInvalid,
		Err: fmt.Errorf("nebius launch: %w", err)}
}

// createAnswer reads what create --async printed: an Operation (resource_id
// names the instance), or an Instance (metadata.id) as the CLI prints when
// it waited for the operation.
func createAnswer(stdout []byte) (string, *wireInstance, error) {
	var in wireInstance
	if err := decode(stdout, &in); err == nil && in.Metadata.ID != "" {
		if err := checkID("launch", in.Metadata.ID); err != nil {
			return "", nil, err
		}
		return in.Metadata.ID, &in, nil
	}
	var op wireOperation
	if err := decode(stdout, &op); err != nil {
		return "", nil, err
	}
	if err := checkID("launch", op.ResourceID); err != nil {
		return "", nil, errors.New("operation without resource_id")
	}
	return op.ResourceID, nil, nil
}

// grpcCode finds the gRPC status the CLI printed ("rpc error: code =
// NotFound desc = …", or a canonical name such as NOT_FOUND) and returns it
// lower-case without '_' ("notfound"); "" when there is none.
var grpcCodeRe = regexp.MustCompile(`(?i)\bcode\s*[=:]\s*([A-Za-z_]+)`)

var canonicalCodes = []string{"INVALID_ARGUMENT", "UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND", "ALREADY_EXISTS",
	"RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "OUT_OF_RANGE", "UNIMPLEMENTED", "ABORTED", "UNAVAILABLE",
	"DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "CANCELLED", "DATA_LOSS"}

func grpcCode(msg string) string {
	if m := grpcCodeRe.FindStringSubmatch(msg); m != nil {
		return strings.ToLower(strings.ReplaceAll(m[1], "_", ""))
	}
	for _, c := range canonicalCodes {
		if strings.Contains(msg, c) {
			return strings.ToLower(strings.ReplaceAll(c, "_", ""))
		}
	}
	return ""
}

// launchKind classifies a failed create --async. Because the CLI does not
// wait for the operation, a gRPC status it prints is the Create call's own
// answer, and gRPC's contract is that a call answered with an error status
// started nothing: those statuses mean not applied (KindInvalid, KindAuth,
// KindNotFound, KindConflict, KindRateLimited; providers.LaunchNotApplied).
// The exceptions keep the outcome unknown (KindTransient): Unavailable,
// DeadlineExceeded, Unknown, Internal, Cancelled, Aborted and DataLoss (the
// call may have been carried out before the connection failed), and any
// failure without a status other than the CLI's own usage refusal
// (unknown flag or command) and a CLI that could not be started
// (KindNotSent). A timeout or a killed CLI stays KindTransient.
func launchKind(err error) error {
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind == providers.KindNotSent ||
		errors.Is(pe.Err, context.DeadlineExceeded) || errors.Is(pe.Err, context.Canceled) {
		return err // not started (not applied), or cut off (unknown): as run classified it
	}
	msg := pe.Err.Error()
	out := *pe
	switch code := grpcCode(msg); code {
	case "invalidargument", "outofrange", "unimplemented":
		out.Kind, out.Code = providers.KindInvalid, "InvalidArgument"
	case "unauthenticated", "permissiondenied":
		out.Kind, out.Code = providers.KindAuth, "PermissionDenied"
	case "notfound":
		out.Kind, out.Code = providers.KindNotFound, "NotFound"
	case "alreadyexists", "failedprecondition":
		out.Kind, out.Code = providers.KindConflict, "FailedPrecondition"
	case "resourceexhausted":
		out.Kind, out.Code = providers.KindRateLimited, "ResourceExhausted"
	case "":
		if pe.Kind != providers.KindInvalid { // the CLI's own "unknown flag", "unknown command"
			out.Kind = providers.KindTransient
		}
	default:
		out.Kind, out.Code = providers.KindTransient, code
	}
	return &out
}

// scrub removes the request's environment values (the enrollment token
// among them) and its user data from an error's text, in case the CLI
// quoted the request back on stderr: errors reach logs and the audit stream.
func scrub(err error, env map[string]string, userData string) error {
	var pe *providers.Error
	if !errors.As(err, &pe) {
		return err
	}
	msg := pe.Err.Error()
	clean := msg
	if userData != "" {
		clean = strings.ReplaceAll(clean, userData, "[user data]")
	}
	for _, v := range env {
		if len(v) >= 4 {
			clean = strings.ReplaceAll(clean, v, "[redacted]")
		}
	}
	if clean == msg {
		return err
	}
	out := *pe
	out.Err = errors.New(clean)
	return &out
}
