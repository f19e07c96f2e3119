// Package vast is a hand-written client of the Vast.ai REST API implementing
// providers.Provider (no Go SDK for Vast is available on the module proxy).
//
// Endpoints used (docs/provider-apis.md §1; vast-ai/docs
// api-reference/openapi/yaml/show_instances.yaml and show_instance.yaml):
//
//	List       GET    /api/v1/instances/?limit=25&order_by=…&after_token=…  (paged; follows next_token until null)
//	Get        GET    /api/v0/instances/{id}/?owner=me   → {"instances": {…}} or {"instances": null}
//	Start/Stop PUT    /api/v0/instances/{id}/  {"state":"running"|"stopped"}
//	Terminate  DELETE /api/v0/instances/{id}/  (no_such_instance / 404 = already gone = success)
//	Launch     PUT    /api/v0/asks/{offer id}/  rent an offer (launch.go)
//
// Authentication is "Authorization: Bearer <key>"; the key is never logged.
// Vast answers 429 with a plain-text body ("API requests too frequent") and no
// Retry-After: such answers are KindRateLimited with RetryAfter 0 and the
// resilience layer backs off by itself.
//
// # Field mapping
//
// The client reads these instance fields: id, label (may be null),
// actual_status (may be null), intended_status, cur_state, next_state,
// is_bid, image_runtype, gpu_name, num_gpus, gpu_ram (MB, per GPU),
// cpu_cores_effective, cpu_ram (MB), geolocation, public_ipaddr, ssh_host,
// ssh_port, ports["22/tcp"][0].HostPort (a string), dph_total (USD/h, storage
// included) and start_date (epoch seconds, float).
//
// # States
//
// actual_status (cli/reference/show-instance.mdx) maps as follows:
//
//	null       → pending   (provisioning)
//	created    → pending   (container created, not started)
//	loading    → starting  (image pull / container start)
//	scheduling → starting  (UI word: start requested, waiting for the GPU)
//	rebooting  → starting
//	running    → running   (stopping when intended_status is "stopped")
//	stopped    → stopped   (starting when intended_status is "running": start requested)
//	frozen     → paused    (suspended with memory; the GPU is still billed)
//	exited     → error     (the container died; stopped when intended_status is "stopped")
//	unknown    → unknown   (no heartbeat from the host)
//	offline    → unknown   (host disconnected: whether the container still runs is not known, so it is not guessed)
//	other      → unknown   (RawState keeps the word)
//
// cur_state "unloaded" (contract released on destroy) is terminated whatever
// actual_status says.
//
// # Preemption
//
// An interruptible (is_bid) instance is reported as preempted, with
// Interrupted=true, when
//
//	(a) intended_status is "running" but actual_status is "stopped" (or
//	    actual_status is null/"exited" while cur_state is "stopped"): the user
//	    wants it running but it lost the GPU to a higher bid; Vast resumes it
//	    by itself when priority returns (docs/provider-apis.md §1, "Preemption");
//	(b) cur_state == intended_status == next_state == "stopped": the rule
//	    dstack uses to detect interruption (dstackai/dstack
//	    src/dstack/_internal/core/backends/vastai/compute.py, third party).
//
// Caveat of (b): a bid instance that was stopped on purpose looks the same;
// the coordinator knows which stops it issued (audit) and must not treat its
// own stop as a preemption. On-demand instances are never reported preempted.
//
// # SSH
//
// Two endpoints are kept, never mixed: the proxy endpoint (ssh_host,
// ssh_port; user root; ssh_port+1 for jupyter runtypes, as the Vast CLI
// does) and the direct endpoint (public_ipaddr and the host port mapped to
// 22/tcp; user root). "ports" is present only on running instances.
package vast

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

// Name is the provider name.
const Name = "vast"

// DefaultBaseURL is the Vast console API host.
const DefaultBaseURL = "https://console.vast.ai"

// MaxPageSize is the largest page the v1 list endpoint returns.
const MaxPageSize = 25

// maxPages bounds the pagination loop against a server that never ends it.
const maxPages = 10000

// Options configures a Client.
type Options struct {
	BaseURL    string       // default DefaultBaseURL
	APIKey     string       // required
	HTTPClient *http.Client // default: 30s timeout
	Log        zerolog.Logger
	PageSize   int // rows per list page, 1..25 (default 25)
}

// Client talks to the Vast.ai API. It is safe for concurrent use.
type Client struct {
	api      *restapi.Client
	pageSize int
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
	if o.PageSize <= 0 || o.PageSize > MaxPageSize {
		o.PageSize = MaxPageSize
	}
	api, err := restapi.New(restapi.Config{
		Provider:   Name,
		BaseURL:    o.BaseURL,
		HTTPClient: o.HTTPClient,
		Authorize:  restapi.Bearer(o.APIKey),
		Log:        o.Log,
		ParseError: parseError,
	})
	if err != nil {
		return nil, err
	}
	return &Client{api: api, pageSize: o.PageSize}, nil
}

// Name returns "vast".
func (c *Client) Name() string { return Name }

// Capabilities: instances can be stopped and started, a stopped instance
// costs only storage, and instances may vanish or be paused (outbid) with no
// notice.
func (c *Client) Capabilities() providers.Capabilities {
	return providers.Capabilities{CanStop: true, CanStart: true, Ephemeral: mesh.Facts(mesh.ProviderVast).Ephemeral, NoticeSeconds: mesh.Facts(mesh.ProviderVast).NoticeSeconds()}
}

type listPage struct {
	Instances []json.RawMessage `json:"instances"`
	NextToken *string           `json:"next_token"`
}

// List returns all instances of the account, following next_token page by
// page. A legacy answer ({"instances":[…]} without next_token) is one page.
func (c *Client) List(ctx context.Context) ([]providers.Instance, error) {
	var out []providers.Instance
	index := map[string]int{}
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		if page >= maxPages {
			return nil, c.api.Invalid(providers.OpList, 0, "more than %d pages: next_token never ends", maxPages)
		}
		q := url.Values{}
		q.Set("limit", strconv.Itoa(c.pageSize))
		q.Set("order_by", `[{"col":"id","dir":"asc"}]`)
		if token != "" {
			q.Set("after_token", token)
		}
		resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpList, Method: http.MethodGet, Path: "/api/v1/instances/", Query: q})
		if err != nil {
			return nil, err
		}
		var p listPage
		if err := c.api.Decode(providers.OpList, resp, &p); err != nil {
			return nil, err
		}
		if p.Instances == nil && !strings.Contains(string(resp.Body), `"instances"`) {
			return nil, c.api.Invalid(providers.OpList, resp.Status, "response has no \"instances\" field")
		}
		for i, raw := range p.Instances {
			inst, err := parseInstance(raw)
			if err != nil {
				return nil, c.api.Invalid(providers.OpList, resp.Status, "instances[%d] of page %d: %v", i, page+1, err)
			}
			if j, dup := index[inst.ID]; dup { // moved between pages: keep the newer row
				out[j] = inst
				continue
			}
			index[inst.ID] = len(out)
			out = append(out, inst)
		}
		if p.NextToken == nil || *p.NextToken == "" {
			return out, nil
		}
		if seen[*p.NextToken] {
			return nil, c.api.Invalid(providers.OpList, resp.Status, "next_token repeats on page %d: pagination loop", page+1)
		}
		seen[*p.NextToken] = true
		token = *p.NextToken
	}
}

type showResponse struct {
	Instances json.RawMessage `json:"instances"`
}

// Get returns one instance. The show endpoint wraps the object as
// {"instances": {…}}; {"instances": null} (or 404) means it does not exist.
func (c *Client) Get(ctx context.Context, id string) (providers.Instance, error) {
	if err := checkID(providers.OpGet, id); err != nil {
		return providers.Instance{}, err
	}
	q := url.Values{"owner": {"me"}}
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpGet, Method: http.MethodGet, Path: instancePath(id), Query: q})
	if err != nil {
		return providers.Instance{}, err
	}
	var sr showResponse
	if err := c.api.Decode(providers.OpGet, resp, &sr); err != nil {
		return providers.Instance{}, err
	}
	raw := json.RawMessage(strings.TrimSpace(string(sr.Instances)))
	switch {
	case len(raw) == 0 && !strings.Contains(string(resp.Body), `"instances"`):
		return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "response has no \"instances\" field")
	case len(raw) == 0 || string(raw) == "null":
		return providers.Instance{}, notFound(providers.OpGet, id)
	case raw[0] == '[': // tolerate an array answer: pick the row with our id
		var rows []json.RawMessage
		if err := json.Unmarshal(raw, &rows); err != nil {
			return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "instances: %s", restapi.DescribeJSONError(err, raw))
		}
		for i, r := range rows {
			inst, err := parseInstance(r)
			if err != nil {
				return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "instances[%d]: %v", i, err)
			}
			if inst.ID == id {
				return inst, nil
			}
		}
		return providers.Instance{}, notFound(providers.OpGet, id)
	}
	inst, err := parseInstance(raw)
	if err != nil {
		return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "instances: %v", err)
	}
	if inst.ID != id {
		return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "asked for instance %s, got %s", id, inst.ID)
	}
	return inst, nil
}

// Start asks Vast to run a stopped instance (PUT {"state":"running"}).
func (c *Client) Start(ctx context.Context, id string) error {
	return c.setState(ctx, providers.OpStart, id, "running")
}

// Stop asks Vast to stop an instance (PUT {"state":"stopped"}); its disk is kept.
func (c *Client) Stop(ctx context.Context, id string) error {
	return c.setState(ctx, providers.OpStop, id, "stopped")
}

type mutationResponse struct {
	Success *bool   `json:"success"`
	Error   *string `json:"error"`
	Msg     *string `json:"msg"`
	Message *string `json:"message"`
}

func (c *Client) setState(ctx context.Context, op, id, state string) error {
	if err := checkID(op, id); err != nil {
		return err
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: op, Method: http.MethodPut, Path: instancePath(id),
		Body: map[string]string{"state": state}})
	if err != nil {
		return err
	}
	return c.checkMutation(op, resp)
}

// Terminate destroys an instance (DELETE). An instance that is already gone
// (404, or error code no_such_instance / not_found) counts as destroyed.
func (c *Client) Terminate(ctx context.Context, id string) error {
	if err := checkID(providers.OpTerminate, id); err != nil {
		return err
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpTerminate, Method: http.MethodDelete, Path: instancePath(id),
		Body: struct{}{}})
	if err == nil {
		err = c.checkMutation(providers.OpTerminate, resp)
	}
	if providers.KindOf(err) == providers.KindNotFound {
		return nil
	}
	return err
}

// checkMutation reads {"success": bool, "error": code, "msg": text}; a 2xx
// answer with success=false is an error of the kind its code says. An empty
// or non-JSON 2xx body is accepted (the status already says success).
func (c *Client) checkMutation(op string, resp *restapi.Response) error {
	body := strings.TrimSpace(string(resp.Body))
	if body == "" || body[0] != '{' {
		return nil
	}
	var m mutationResponse
	if err := c.api.Decode(op, resp, &m); err != nil {
		return err
	}
	if m.Success == nil || *m.Success {
		return nil
	}
	info := errorInfo(m)
	kind := info.Kind
	if kind == "" {
		kind = providers.KindInvalid
	}
	msg := info.Message
	if msg == "" {
		msg = "success=false"
	}
	return &providers.Error{Provider: Name, Op: op, Kind: kind, Status: resp.Status, Code: info.Code, Err: fmt.Errorf("%s", msg)}
}

func instancePath(id string) string { return "/api/v0/instances/" + url.PathEscape(id) + "/" }

// checkID refuses an id that is not a Vast contract id (digits), so no
// malformed path is sent and no other resource is addressed by accident.
func checkID(op, id string) error {
	if id == "" || strings.TrimLeft(id, "0123456789") != "" || len(id) > 19 {
		return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("instance id %q is not a Vast contract id (digits only)", id)}
	}
	return nil
}

func notFound(op, id string) error {
	return &providers.Error{Provider: Name, Op: op, Kind: providers.KindNotFound,
		Err: fmt.Errorf("instance %s: %w", id, providers.ErrNotFound)}
}

// parseError reads Vast's error bodies: {"success":false,"error":code,"msg":…},
// {"detail":…}, {"message":…} or plain text ("API requests too frequent").
func parseError(_ int, _ http.Header, body []byte) restapi.ErrorInfo {
	trim := strings.TrimSpace(string(body))
	if strings.HasPrefix(trim, "{") {
		var m struct {
			mutationResponse
			Detail *string `json:"detail"`
		}
		if json.Unmarshal(body, &m) == nil {
			if m.Msg == nil && m.Message == nil {
				m.Msg = m.Detail
			}
			return errorInfo(m.mutationResponse)
		}
	}
	info := restapi.ErrorInfo{Message: restapi.Snippet(body)}
	if strings.Contains(strings.ToLower(trim), "too frequent") {
		info.Kind = providers.KindRateLimited
	}
	return info
}

func errorInfo(m mutationResponse) restapi.ErrorInfo {
	var info restapi.ErrorInfo
	if m.Error != nil {
		info.Code = *m.Error
	}
	switch {
	case m.Msg != nil:
		info.Message = *m.Msg
	case m.Message != nil:
		info.Message = *m.Message
	}
	switch info.Code {
	case "no_such_instance", "not_found":
		info.Kind = providers.KindNotFound
	case "auth_error":
		info.Kind = providers.KindAuth
	case "rate_limit_exceeded":
		info.Kind = providers.KindRateLimited
	}
	if info.Kind == "" && strings.Contains(strings.ToLower(info.Message), "too frequent") {
		info.Kind = providers.KindRateLimited
	}
	return info
}

// wireInstance is the subset of the Vast instance object the client reads.
// Pointers tell null/absent from zero.
type wireInstance struct {
	ID                *int64          `json:"id"`
	Label             *string         `json:"label"`
	ActualStatus      *string         `json:"actual_status"`
	IntendedStatus    *string         `json:"intended_status"`
	CurState          *string         `json:"cur_state"`
	NextState         *string         `json:"next_state"`
	IsBid             *bool           `json:"is_bid"`
	ImageRuntype      *string         `json:"image_runtype"`
	GPUName           *string         `json:"gpu_name"`
	NumGPUs           *float64        `json:"num_gpus"`
	GPURAM            *float64        `json:"gpu_ram"` // MB per GPU
	CPUCoresEffective *float64        `json:"cpu_cores_effective"`
	CPURAM            *float64        `json:"cpu_ram"` // MB
	Geolocation       *string         `json:"geolocation"`
	PublicIPAddr      *string         `json:"public_ipaddr"`
	SSHHost           *string         `json:"ssh_host"`
	SSHPort           *int            `json:"ssh_port"`
	Ports             json.RawMessage `json:"ports"`
	DphTotal          *float64        `json:"dph_total"`
	StartDate         *float64        `json:"start_date"`
	ExtraEnv          json.RawMessage `json:"extra_env"` // [[name, value], ...]; only the ringmesh markers are read
	// Costs is the "instance" sub-object: totalHour, diskHour (storage,
	// billed also while stopped), discountedTotalPerHour.
	Costs *struct {
		DiskHour *float64 `json:"diskHour"`
	} `json:"instance"`
}

type portBinding struct {
	HostIP   string          `json:"HostIp"`
	HostPort json.RawMessage `json:"HostPort"`
}

// parseInstance maps one Vast instance object. Errors name the field.
func parseInstance(raw []byte) (providers.Instance, error) {
	var w wireInstance
	if err := json.Unmarshal(raw, &w); err != nil {
		return providers.Instance{}, fmt.Errorf("%s", restapi.DescribeJSONError(err, raw))
	}
	if w.ID == nil {
		return providers.Instance{}, fmt.Errorf("field id: missing or null")
	}
	if *w.ID <= 0 {
		return providers.Instance{}, fmt.Errorf("field id: %d is not a contract id", *w.ID)
	}
	inst := providers.Instance{
		ID:            strconv.FormatInt(*w.ID, 10),
		Provider:      Name,
		Name:          str(w.Label),
		RawState:      str(w.ActualStatus),
		GPUModel:      providers.NormalizeGPU(str(w.GPUName)),
		Region:        str(w.Geolocation),
		Interruptible: w.IsBid != nil && *w.IsBid,
	}
	if ip, ok := providers.CleanHost(str(w.PublicIPAddr)); ok && net.ParseIP(ip) != nil {
		inst.PublicIP = ip
	}
	inst.State, inst.Interrupted = mapState(w)
	inst.Labels = envLabels(w.ExtraEnv)
	if w.NumGPUs != nil {
		if *w.NumGPUs < 0 || *w.NumGPUs != math.Trunc(*w.NumGPUs) {
			return providers.Instance{}, fmt.Errorf("field num_gpus: %v is not a GPU count", *w.NumGPUs)
		}
		inst.GPUCount = int(*w.NumGPUs)
	}
	if w.GPURAM != nil && *w.GPURAM > 0 {
		inst.GPUMemGiB = *w.GPURAM / 1024
	}
	if w.CPUCoresEffective != nil && *w.CPUCoresEffective > 0 {
		inst.CPUs = *w.CPUCoresEffective
	}
	if w.CPURAM != nil && *w.CPURAM > 0 {
		inst.MemoryGiB = *w.CPURAM / 1024
	}
	if w.DphTotal != nil {
		if *w.DphTotal < 0 || math.IsNaN(*w.DphTotal) {
			return providers.Instance{}, fmt.Errorf("field dph_total: %v is not a price", *w.DphTotal)
		}
		inst.Price = providers.Price{PerHour: *w.DphTotal, Currency: "USD", Source: "vast:dph_total"}
	}
	if w.Costs != nil && w.Costs.DiskHour != nil && *w.Costs.DiskHour >= 0 && !math.IsInf(*w.Costs.DiskHour, 0) {
		inst.StoragePrice = providers.Price{PerHour: *w.Costs.DiskHour, Currency: "USD", Source: "vast:instance.diskHour"}
	}
	if w.StartDate != nil && *w.StartDate > 0 {
		// Microsecond precision: a float64 epoch cannot carry more.
		inst.CreatedAt = time.UnixMicro(int64(math.Round(*w.StartDate * 1e6))).UTC()
	}

	// Proxy endpoint: ssh_host:ssh_port (jupyter runtypes: ssh_port+1).
	if host, ok := providers.CleanHost(str(w.SSHHost)); ok && w.SSHPort != nil && *w.SSHPort > 0 {
		port := *w.SSHPort
		if strings.Contains(strings.ToLower(str(w.ImageRuntype)), "jupyter") {
			port++
		}
		if port > 65535 {
			return providers.Instance{}, fmt.Errorf("field ssh_port: %d out of range", *w.SSHPort)
		}
		inst.SSH = append(inst.SSH, providers.SSHEndpoint{Kind: providers.EndpointProxy, Host: host, Port: port, User: "root"})
	}
	// Direct endpoint: public_ipaddr and the host port mapped to 22/tcp.
	port, err := directSSHPort(w.Ports)
	if err != nil {
		return providers.Instance{}, err
	}
	if ip := inst.PublicIP; ip != "" && port > 0 {
		inst.SSH = append(inst.SSH, providers.SSHEndpoint{Kind: providers.EndpointDirect, Host: ip, Port: port, User: "root"})
	}
	return inst, nil
}

// directSSHPort returns ports["22/tcp"][0].HostPort, 0 when there is none.
func directSSHPort(raw json.RawMessage) (int, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, nil
	}
	var ports map[string][]portBinding
	if err := json.Unmarshal(raw, &ports); err != nil {
		return 0, fmt.Errorf("field ports: %s", restapi.DescribeJSONError(err, raw))
	}
	b := ports["22/tcp"]
	if len(b) == 0 {
		return 0, nil
	}
	hp := strings.TrimSpace(string(b[0].HostPort))
	if hp == "" || hp == "null" {
		return 0, nil
	}
	if unq, err := strconv.Unquote(hp); err == nil { // documented as a string: "40001"
		hp = unq
	}
	port, err := strconv.Atoi(strings.TrimSpace(hp))
	if err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf(`field ports["22/tcp"][0].HostPort: %s is not a port number`, string(b[0].HostPort))
	}
	return port, nil
}

func mapState(w wireInstance) (providers.State, bool) {
	actual, intended, cur, next := str(w.ActualStatus), str(w.IntendedStatus), str(w.CurState), str(w.NextState)
	if cur == "unloaded" {
		return providers.StateTerminated, false
	}
	if w.IsBid != nil && *w.IsBid {
		// Rule (a): wants to run, holds no GPU.
		if intended == "running" && (actual == "stopped" || (cur == "stopped" && (actual == "" || actual == "exited"))) {
			return providers.StatePreempted, true
		}
		// Rule (b), dstack's: contract stopped all the way.
		if cur == "stopped" && intended == "stopped" && next == "stopped" {
			return providers.StatePreempted, true
		}
	}
	switch actual {
	case "":
		return providers.StatePending, false
	case "created":
		return providers.StatePending, false
	case "loading", "scheduling", "rebooting":
		return providers.StateStarting, false
	case "running":
		if intended == "stopped" {
			return providers.StateStopping, false
		}
		return providers.StateRunning, false
	case "stopped":
		if intended == "running" {
			return providers.StateStarting, false
		}
		return providers.StateStopped, false
	case "frozen":
		return providers.StatePaused, false
	case "exited":
		if intended == "stopped" {
			return providers.StateStopped, false
		}
		return providers.StateError, false
	}
	return providers.StateUnknown, false // "unknown", "offline" and words not documented
}

// str reads a nullable string, trimmed of surrounding whitespace (Vast
// fields such as public_ipaddr and local_ipaddrs come with stray spaces and
// newlines).
func str(p *string) string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(*p)
}
