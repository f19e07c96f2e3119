// Package lambda is a hand-written client of the Lambda Cloud API
// implementing providers.Provider (docs/provider-apis.md §3; Lambda
// OpenAPI 1.5.3 / 1.10.0). No Go SDK is available on the module proxy.
//
// Endpoints used (below https://cloud.lambda.ai/api/v1):
//
//	List      GET  /instances                      → {"data":[Instance…]}
//	Get       GET  /instances/{id}                 → {"data":Instance}; 404 global/object-does-not-exist
//	Terminate POST /instance-operations/terminate  {"instance_ids":[id]} → {"data":{"terminated_instances":[…]}}
//	Launch    POST /instance-operations/launch     create one instance (launch.go)
//
// Lambda has no stop/start: Start and Stop return an error wrapping
// providers.ErrUnsupported without calling the API, and Capabilities says
// CanStop=false. Billing runs until an instance is terminated.
//
// Authentication is "Authorization: Bearer <key>"; the key is never logged.
// Errors come as {"error":{"code","message","suggestion"}}; the code decides
// the kind: global/invalid-api-key, global/account-inactive, global/forbidden
// → auth; global/object-does-not-exist, global/not-found → not found;
// global/conflict → conflict; global/invalid-parameters,
// global/invalid-address, global/quota-exceeded, instance-operations/* →
// invalid; provider/* (upstream trouble) → transient; otherwise the HTTP
// status decides. Lambda allows about one request per second: every request
// first waits on a client-side rate limiter (golang.org/x/time/rate,
// injectable via Options.Limiter).
//
// # Field mapping
//
// Instance fields read: id, name, ip, status, region.name, tags [{key,value}],
// instance_type.{name, gpu_description, price_cents_per_hour,
// specs.{vcpus, memory_gib, gpus}}.
//
// status: booting → starting, active → running, unhealthy → error,
// terminating → stopping (still billed until gone), terminated → terminated,
// preempted → preempted (Interrupted=true); other words → unknown.
//
// GPU model: NormalizeGPU of gpu_description without its "(96 GB)" suffix,
// else of the instance type name (gpu_1x_gh200 → GH200). GPU count:
// specs.gpus, else the "<n>x" of the type name. GPU memory per GPU: the
// "(<n> GB)" of gpu_description, else 0. Price: price_cents_per_hour / 100
// USD, Source "lambda:price_cents_per_hour". SSH: ip:22 user "ubuntu" (Lambda
// Stack images), a direct endpoint; Lambda has no proxy. The API has no
// creation time, so CreatedAt stays zero.
package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

// Name is the provider name.
const Name = "lambda"

// DefaultBaseURL is the Lambda Cloud API (the old cloud.lambdalabs.com host is deprecated).
const DefaultBaseURL = "https://cloud.lambda.ai/api/v1"

// DefaultSSHUser is the login user of Lambda Stack images.
const DefaultSSHUser = "ubuntu"

// Limiter paces requests; *rate.Limiter satisfies it.
type Limiter = restapi.Limiter

// DefaultLimiter allows one request per second with a burst of one.
func DefaultLimiter() *rate.Limiter { return rate.NewLimiter(rate.Limit(1), 1) }

// Options configures a Client.
type Options struct {
	BaseURL    string       // default DefaultBaseURL
	APIKey     string       // required
	HTTPClient *http.Client // default: 30s timeout
	Log        zerolog.Logger
	// Limiter paces requests (default DefaultLimiter()). Tests pass
	// rate.NewLimiter(rate.Inf, 1).
	Limiter Limiter
	// SSHUser overrides DefaultSSHUser.
	SSHUser string
}

// Client talks to the Lambda Cloud API. It is safe for concurrent use.
type Client struct {
	api     *restapi.Client
	sshUser string
}

var _ providers.Provider = (*Client)(nil)

// New returns a Client. A missing API key is an error wrapping
// providers.ErrNotConfigured.
func New(o Options) (*Client, error) {
	if strings.TrimSpace(o.APIKey) == "" {
		return nil, fmt.Errorf("%s: %w: empty API key", Name, providers.ErrNotConfigured)
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	if o.Limiter == nil {
		o.Limiter = DefaultLimiter()
	}
	if o.SSHUser == "" {
		o.SSHUser = DefaultSSHUser
	}
	api, err := restapi.New(restapi.Config{
		Provider:   Name,
		BaseURL:    o.BaseURL,
		HTTPClient: o.HTTPClient,
		Authorize:  restapi.Bearer(o.APIKey),
		Log:        o.Log,
		Limiter:    o.Limiter,
		ParseError: parseError,
	})
	if err != nil {
		return nil, err
	}
	return &Client{api: api, sshUser: o.SSHUser}, nil
}

// Name returns "lambda".
func (c *Client) Name() string { return Name }

// Capabilities: terminate only; on-demand instances are not ephemeral.
func (c *Client) Capabilities() providers.Capabilities {
	return providers.Capabilities{CanStop: false, CanStart: false, Ephemeral: mesh.Facts(mesh.ProviderLambda).Ephemeral, NoticeSeconds: mesh.Facts(mesh.ProviderLambda).NoticeSeconds()}
}

// List returns the account's instances.
func (c *Client) List(ctx context.Context) ([]providers.Instance, error) {
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpList, Method: http.MethodGet, Path: "/instances"})
	if err != nil {
		return nil, err
	}
	var body struct {
		Data *[]json.RawMessage `json:"data"`
	}
	if err := c.api.Decode(providers.OpList, resp, &body); err != nil {
		return nil, err
	}
	if body.Data == nil {
		return nil, c.api.Invalid(providers.OpList, resp.Status, "field data: missing or null")
	}
	out := make([]providers.Instance, 0, len(*body.Data))
	for i, raw := range *body.Data {
		inst, err := c.parseInstance(raw)
		if err != nil {
			return nil, c.api.Invalid(providers.OpList, resp.Status, "data[%d]: %v", i, err)
		}
		out = append(out, inst)
	}
	return out, nil
}

// Get returns one instance; 404 is providers.ErrNotFound.
func (c *Client) Get(ctx context.Context, id string) (providers.Instance, error) {
	if err := checkID(providers.OpGet, id); err != nil {
		return providers.Instance{}, err
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpGet, Method: http.MethodGet, Path: "/instances/" + url.PathEscape(id)})
	if err != nil {
		return providers.Instance{}, err
	}
	var body struct {
		Data json.RawMessage `json:"data"`
	}
	if err := c.api.Decode(providers.OpGet, resp, &body); err != nil {
		return providers.Instance{}, err
	}
	if d := strings.TrimSpace(string(body.Data)); d == "" || d == "null" {
		return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "field data: missing or null")
	}
	inst, err := c.parseInstance(body.Data)
	if err != nil {
		return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "data: %v", err)
	}
	if inst.ID != id {
		return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "asked for instance %s, got %s", id, inst.ID)
	}
	return inst, nil
}

// Start is not supported: Lambda instances cannot be stopped or started.
func (c *Client) Start(context.Context, string) error { return unsupported(providers.OpStart) }

// Stop is not supported: Lambda instances can only be terminated.
func (c *Client) Stop(context.Context, string) error { return unsupported(providers.OpStop) }

func unsupported(op string) error {
	return fmt.Errorf("%s %s: %w (Lambda instances can only be terminated)", Name, op, providers.ErrUnsupported)
}

// Terminate terminates one instance; one that does not exist any more counts
// as terminated. A 200 whose data.terminated_instances does not list the
// instance with status terminating or terminated is KindUnconfirmed
// (providers.ErrUnconfirmed): the terminate may or may not have happened.
func (c *Client) Terminate(ctx context.Context, id string) error {
	if err := checkID(providers.OpTerminate, id); err != nil {
		return err
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpTerminate, Method: http.MethodPost,
		Path: "/instance-operations/terminate", Body: map[string][]string{"instance_ids": {id}}})
	if providers.KindOf(err) == providers.KindNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	var body struct {
		Data *struct {
			Terminated *[]json.RawMessage `json:"terminated_instances"`
		} `json:"data"`
	}
	if err := c.api.Decode(providers.OpTerminate, resp, &body); err != nil {
		return err
	}
	if body.Data == nil || body.Data.Terminated == nil {
		return c.api.Invalid(providers.OpTerminate, resp.Status, "field data.terminated_instances: missing or null")
	}
	listed := false
	for i, raw := range *body.Data.Terminated {
		inst, err := c.parseInstance(raw)
		if err != nil {
			return c.api.Invalid(providers.OpTerminate, resp.Status, "data.terminated_instances[%d]: %v", i, err)
		}
		if inst.ID == id && (inst.RawState == "terminating" || inst.RawState == "terminated") {
			listed = true
		}
	}
	if !listed {
		// A 200 that does not list our instance as terminating/terminated
		// (e.g. "terminated_instances": []) proves nothing: the caller
		// confirms with a get before it reports the terminate done.
		return &providers.Error{Provider: Name, Op: providers.OpTerminate, Kind: providers.KindUnconfirmed, Status: resp.Status,
			Err: fmt.Errorf("answer does not list instance %s as terminating or terminated (%d listed): %w", id, len(*body.Data.Terminated), providers.ErrUnconfirmed)}
	}
	return nil
}

// checkID refuses ids that are not Lambda instance ids (hex, ≤ 64 chars).
func checkID(op, id string) error {
	ok := id != "" && len(id) <= 64
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			ok = false
			break
		}
	}
	if !ok {
		return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("instance id %q is not a Lambda instance id", id)}
	}
	return nil
}

// parseError reads {"error":{"code","message","suggestion"}}.
func parseError(status int, _ http.Header, body []byte) restapi.ErrorInfo {
	var e struct {
		Error *struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			Suggestion string `json:"suggestion"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == nil {
		return restapi.ErrorInfo{}
	}
	info := restapi.ErrorInfo{Code: e.Error.Code, Message: e.Error.Message}
	if e.Error.Suggestion != "" {
		info.Message += " (" + e.Error.Suggestion + ")"
	}
	info.Kind = codeKind(e.Error.Code, status)
	return info
}

func codeKind(code string, status int) providers.ErrorKind {
	switch code {
	case "global/invalid-api-key", "global/account-inactive", "global/forbidden":
		return providers.KindAuth
	case "global/object-does-not-exist", "global/not-found":
		return providers.KindNotFound
	case "global/conflict":
		return providers.KindConflict
	case "global/invalid-parameters", "global/invalid-address", "global/quota-exceeded":
		return providers.KindInvalid
	}
	switch {
	case strings.HasPrefix(code, "provider/"):
		return providers.KindTransient
	case strings.HasPrefix(code, "instance-operations/"), strings.HasPrefix(code, "ssh-keys/"):
		return providers.KindInvalid
	}
	return "" // global/unknown and anything new: the status decides
}

type wireInstance struct {
	ID     *string `json:"id"`
	Name   *string `json:"name"`
	IP     *string `json:"ip"`
	Status *string `json:"status"`
	Region *struct {
		Name *string `json:"name"`
	} `json:"region"`
	InstanceType *struct {
		Name              *string  `json:"name"`
		GPUDescription    *string  `json:"gpu_description"`
		PriceCentsPerHour *float64 `json:"price_cents_per_hour"`
		Specs             *struct {
			VCPUs     *float64 `json:"vcpus"`
			MemoryGiB *float64 `json:"memory_gib"`
			GPUs      *float64 `json:"gpus"`
		} `json:"specs"`
	} `json:"instance_type"`
	Tags []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"tags"`
}

var (
	typeCountRe = regexp.MustCompile(`^gpu_(\d+)x_`)
	gpuMemRe    = regexp.MustCompile(`\((\d+(?:\.\d+)?)\s*GB[^)]*\)`)
)

func (c *Client) parseInstance(raw []byte) (providers.Instance, error) {
	var w wireInstance
	if err := json.Unmarshal(raw, &w); err != nil {
		return providers.Instance{}, errors.New(restapi.DescribeJSONError(err, raw))
	}
	if w.ID == nil || *w.ID == "" {
		return providers.Instance{}, errors.New("field id: missing or empty")
	}
	inst := providers.Instance{
		ID:       *w.ID,
		Provider: Name,
		Name:     str(w.Name),
		RawState: str(w.Status),
		PublicIP: publicIP(str(w.IP)),
	}
	switch inst.RawState {
	case "booting":
		inst.State = providers.StateStarting
	case "active":
		inst.State = providers.StateRunning
	case "unhealthy":
		inst.State = providers.StateError
	case "terminating":
		inst.State = providers.StateStopping
	case "terminated":
		inst.State = providers.StateTerminated
	case "preempted":
		inst.State, inst.Interrupted = providers.StatePreempted, true
	default:
		inst.State = providers.StateUnknown
	}
	if w.Region != nil {
		inst.Region = str(w.Region.Name)
	}
	if it := w.InstanceType; it != nil {
		typeName := str(it.Name)
		desc := str(it.GPUDescription)
		if d := strings.TrimSpace(gpuMemRe.ReplaceAllString(desc, "")); d != "" {
			inst.GPUModel = providers.NormalizeGPU(d)
		} else {
			inst.GPUModel = providers.NormalizeGPU(typeName)
		}
		if m := gpuMemRe.FindStringSubmatch(desc); m != nil {
			inst.GPUMemGiB, _ = strconv.ParseFloat(m[1], 64)
		}
		if it.PriceCentsPerHour != nil {
			if *it.PriceCentsPerHour < 0 || math.IsNaN(*it.PriceCentsPerHour) {
				return providers.Instance{}, fmt.Errorf("field instance_type.price_cents_per_hour: %v is not a price", *it.PriceCentsPerHour)
			}
			inst.Price = providers.Price{PerHour: *it.PriceCentsPerHour / 100, Currency: "USD", Source: "lambda:price_cents_per_hour"}
		}
		if s := it.Specs; s != nil {
			if s.GPUs != nil {
				if *s.GPUs < 0 || *s.GPUs != math.Trunc(*s.GPUs) {
					return providers.Instance{}, fmt.Errorf("field instance_type.specs.gpus: %v is not a GPU count", *s.GPUs)
				}
				inst.GPUCount = int(*s.GPUs)
			}
			if s.VCPUs != nil && *s.VCPUs > 0 {
				inst.CPUs = *s.VCPUs
			}
			if s.MemoryGiB != nil && *s.MemoryGiB > 0 {
				inst.MemoryGiB = *s.MemoryGiB
			}
		}
		if inst.GPUCount == 0 {
			if m := typeCountRe.FindStringSubmatch(typeName); m != nil {
				inst.GPUCount, _ = strconv.Atoi(m[1])
			}
		}
	}
	if len(w.Tags) > 0 {
		inst.Labels = make(map[string]string, len(w.Tags))
		for _, t := range w.Tags {
			inst.Labels[t.Key] = t.Value
		}
	}
	if inst.PublicIP != "" {
		inst.SSH = []providers.SSHEndpoint{{Kind: providers.EndpointDirect, Host: inst.PublicIP, Port: 22, User: c.sshUser}}
	}
	return inst, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// publicIP trims the "ip" field and keeps it only if it is a host (an IP
// literal or DNS name): nothing else may become an SSH endpoint.
func publicIP(s string) string {
	ip, _ := providers.CleanHost(s)
	return ip
}
