package nebius

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// Wire types of the nebius CLI's "--format json" output for
// nebius.compute.v1.Instance (field names as in nebius/api
// compute/v1/instance.proto; docs/provider-apis.md §6). The CLI prints protobuf
// JSON: every field is accepted both as the proto name (snake_case) and as
// protojson's lowerCamelCase JSON name, as protojson itself does. Only the
// fields ringmesh reads.
type wireInstance struct {
	Metadata wireMetadata `json:"metadata"`
	Spec     wireSpec     `json:"spec"`
	Status   *wireStatus  `json:"status"`
}

type wireMetadata struct {
	ID        string            `json:"id"`
	ParentID  string            `json:"parent_id"`
	Name      string            `json:"name"`
	CreatedAt string            `json:"created_at"`
	Labels    map[string]string `json:"labels"`
}

type wireSpec struct {
	Resources *struct {
		Platform string `json:"platform"`
		Preset   string `json:"preset"`
	} `json:"resources"`
	Preemptible *struct {
		OnPreemption string `json:"on_preemption"`
	} `json:"preemptible"`
	RecoveryPolicy string `json:"recovery_policy"`
	Stopped        bool   `json:"stopped"`
	Hostname       string `json:"hostname"`
}

type wireStatus struct {
	State             string             `json:"state"`
	NetworkInterfaces []wireNetInterface `json:"network_interfaces"`
	Reconciling       bool               `json:"reconciling"`
}

type wireNetInterface struct {
	Name            string       `json:"name"`
	IPAddress       *wireAddress `json:"ip_address"`
	PublicIPAddress *wireAddress `json:"public_ip_address"`
}

type wireAddress struct {
	Address string `json:"address"`
}

type wireList struct {
	Items         []wireInstance `json:"items"`
	NextPageToken string         `json:"next_page_token"`
}

// mapState maps status.state (nebius.compute.v1.InstanceStatus.InstanceState).
//
//	CREATING                 -> pending
//	UPDATING                 -> starting  (transitional; billed like running)
//	STARTING                 -> starting
//	RUNNING                  -> running
//	STOPPING                 -> stopping
//	STOPPED                  -> stopped, or preempted when the instance is preemptible and
//	                            spec.stopped is false (nobody asked for the stop: Compute
//	                            stopped it on preemption, on_preemption=STOP). This is an
//	                            inference from the documented fields, not an API flag.
//	DELETING                 -> terminated (irreversibly going away)
//	ERROR                    -> error
//	UNSPECIFIED, "", other   -> unknown
func mapState(in wireInstance) (providers.State, bool) {
	state := ""
	if in.Status != nil {
		state = strings.ToUpper(strings.TrimSpace(in.Status.State))
	}
	switch state {
	case "CREATING":
		return providers.StatePending, false
	case "UPDATING", "STARTING":
		return providers.StateStarting, false
	case "RUNNING":
		return providers.StateRunning, false
	case "STOPPING":
		return providers.StateStopping, false
	case "STOPPED":
		if in.Spec.Preemptible != nil && !in.Spec.Stopped {
			return providers.StatePreempted, true
		}
		return providers.StateStopped, false
	case "DELETING":
		return providers.StateTerminated, false
	case "ERROR":
		return providers.StateError, false
	}
	return providers.StateUnknown, false
}

// presetRe parses presets such as "1gpu-16vcpu-200gb", "8gpu-128vcpu-1600gb", "4vcpu-16gb".
var presetRe = regexp.MustCompile(`^(?:(\d+)gpu-)?(\d+)vcpu-(\d+)gb$`)

// gpuMemGiB is the per-GPU memory of platforms whose GPU is known (NVIDIA
// data sheets: H100 SXM 80 GB, H200 141 GB, L40S 48 GB). Others stay 0 (unknown).
var gpuMemGiB = map[string]float64{"H100": 80, "H200": 141, "L40S": 48}

// platformGPU returns the GPU model of a platform ("gpu-h100-sxm" -> "H100");
// CPU platforms ("cpu-d3", "cpu-e2") give "". Unknown GPU platforms are kept raw.
func platformGPU(platform string) string {
	pl := strings.ToLower(strings.TrimSpace(platform))
	if !strings.HasPrefix(pl, "gpu-") {
		return ""
	}
	return providers.NormalizeGPU(platform)
}

// LabelPreemptible is set to "true" in Instance.Labels for preemptible
// instances (spec.preemptible present): Compute stops them with about 60 s
// notice (SIGTERM, then SIGKILL; docs.nebius.com compute/virtual-machines/preemptible).
const LabelPreemptible = "nebius.preemptible"

// Labels carrying the platform and preset.
const (
	LabelPlatform = "nebius.platform"
	LabelPreset   = "nebius.preset"
)

// IsPreemptible reports whether inst was reported as a preemptible Nebius VM.
// The registry should treat such a node as ephemeral (docs/ARCHITECTURE.md §2) unless its
// config says otherwise.
func IsPreemptible(inst providers.Instance) bool {
	return inst.Labels[LabelPreemptible] == "true"
}

// stripCIDR turns "203.0.113.9/32" into "203.0.113.9".
func stripCIDR(a string) string {
	a = strings.TrimSpace(a)
	if i := strings.IndexByte(a, '/'); i >= 0 {
		a = a[:i]
	}
	if net.ParseIP(a) == nil {
		return ""
	}
	return a
}

func (p *Provider) toInstance(in wireInstance) providers.Instance {
	state, preempted := mapState(in)
	out := providers.Instance{
		ID:          in.Metadata.ID,
		Provider:    Name,
		Name:        in.Metadata.Name,
		State:       state,
		Interrupted: preempted,
	}
	if in.Status != nil {
		out.RawState = in.Status.State
		for _, ni := range in.Status.NetworkInterfaces {
			if ni.PublicIPAddress != nil {
				if ip := stripCIDR(ni.PublicIPAddress.Address); ip != "" {
					out.PublicIP = ip
					break
				}
			}
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, in.Metadata.CreatedAt); err == nil {
		out.CreatedAt = t.UTC()
	}
	labels := map[string]string{}
	for k, v := range in.Metadata.Labels {
		labels[k] = v
	}
	platform, preset := "", ""
	if r := in.Spec.Resources; r != nil {
		platform, preset = r.Platform, r.Preset
	}
	if platform != "" {
		labels[LabelPlatform] = platform
	}
	if preset != "" {
		labels[LabelPreset] = preset
	}
	if in.Spec.Preemptible != nil {
		labels[LabelPreemptible] = "true"
		// The VM itself is preemptible: the node's ephemeral default.
		out.Interruptible = true
	}
	if len(labels) > 0 {
		out.Labels = labels
	}
	out.GPUModel = platformGPU(platform)
	if m := presetRe.FindStringSubmatch(strings.ToLower(preset)); m != nil {
		gpus, _ := strconv.Atoi(m[1])
		cpus, _ := strconv.Atoi(m[2])
		mem, _ := strconv.Atoi(m[3])
		out.CPUs, out.MemoryGiB = float64(cpus), float64(mem)
		if out.GPUModel != "" {
			out.GPUCount = gpus
		}
	} else if out.GPUModel != "" {
		out.GPUCount = 0 // preset unknown: count unknown
	}
	if out.GPUModel != "" {
		out.GPUMemGiB = gpuMemGiB[out.GPUModel]
	}
	if out.PublicIP != "" {
		out.SSH = []providers.SSHEndpoint{{Kind: providers.EndpointDirect, Host: out.PublicIP, Port: 22, User: p.sshUser}}
	}
	out.Price = p.priceFor(out.ID, out.Name, platform, preset)
	return out
}

// priceFor looks a price up in Options.Prices by instance ID, then name, then
// "platform/preset", then platform. Nebius's API has no price field; unknown
// stays unknown.
func (p *Provider) priceFor(id, name, platform, preset string) providers.Price {
	for _, k := range []string{id, name, platform + "/" + preset, platform} {
		if k == "" || k == "/" {
			continue
		}
		if pr, ok := p.prices[k]; ok {
			return pr
		}
	}
	return providers.Price{}
}

// UnmarshalJSON accepts both spellings protojson accepts for every field:
// the lowerCamelCase JSON name it prints ("parentId", "publicIpAddress") and
// the proto field name ("parent_id", "public_ip_address").
func (w *wireInstance) UnmarshalJSON(b []byte) error {
	type plain wireInstance
	return decodeProto(b, (*plain)(w))
}

// UnmarshalJSON: see wireInstance.UnmarshalJSON ("nextPageToken" or "next_page_token").
func (w *wireList) UnmarshalJSON(b []byte) error {
	type plain wireList
	return decodeProto(b, (*plain)(w))
}

// protoMapFields are fields whose value is a proto map: their keys are data
// (label names), not field names, and are kept as given.
var protoMapFields = map[string]bool{"labels": true}

// decodeProto rewrites every field name of a protobuf-JSON object to its
// proto (snake_case) spelling and decodes the result into v. A field given in
// both spellings is an error, as in protojson.
func decodeProto(b []byte, v any) error {
	var raw any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	norm, err := protoNames(raw, "")
	if err != nil {
		return err
	}
	nb, err := json.Marshal(norm)
	if err != nil {
		return err
	}
	return json.Unmarshal(nb, v)
}

func protoNames(v any, path string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			name := snakeCase(k)
			if _, dup := out[name]; dup {
				return nil, fmt.Errorf("field %s%s given twice (camelCase and snake_case)", path, name)
			}
			if protoMapFields[name] {
				out[name] = val
				continue
			}
			nv, err := protoNames(val, path+name+".")
			if err != nil {
				return nil, err
			}
			out[name] = nv
		}
		return out, nil
	case []any:
		for i, e := range t {
			ne, err := protoNames(e, fmt.Sprintf("%s%d.", path, i))
			if err != nil {
				return nil, err
			}
			t[i] = ne
		}
		return t, nil
	}
	return v, nil
}

// snakeCase turns a protojson JSON name into the proto field name
// ("publicIpAddress" -> "public_ip_address"); snake_case names are unchanged.
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r + ('a' - 'A'))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
