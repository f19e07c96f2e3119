// Package runpod is a hand-written client of the RunPod REST API v2
// implementing providers.Provider (REST v1 was retired on 2026-11-15 and no Go
// SDK is fetchable; docs/provider-apis.md §2b, runpod/docs
// api-reference-v2/openapi.json).
//
// Endpoints used (paths below the host https://api.runpod.io):
//
//	List       GET    /v2/pods                  → {"pods":[Pod…]}
//	Get        GET    /v2/pods/{id}             → Pod; 404 problem+json when gone
//	Start/Stop POST   /v2/pods/{id}/action      {"action":"start"|"stop"} → 200 Pod; 409 if invalid for the status
//	Terminate  DELETE /v2/pods/{id}             → 204; 404 = already gone = success
//	Launch     POST   /v2/pods                  create a pod (launch.go)
//
// Authentication is "Authorization: Bearer <key>"; the key is never logged.
// Errors are RFC 9457 application/problem+json ({"title","status","detail"}).
// 409 (action invalid for the pod's status) is KindConflict; 429 carries
// Retry-After (seconds), which becomes Error.RetryAfter.
//
// Start and Stop are idempotent: on 409 the client reads the pod once and
// reports success when it is already where the action would take it (stop of
// an EXITED pod, start of a STARTING/RUNNING pod).
//
// # Field mapping
//
// Pod fields read: id, name, status, cost (USD/h), gpu.id, gpu.count,
// dataCenterId, createdAt (RFC 3339), cloud, interruptible (a v1 field, read
// when present), ssh.proxy / ssh.direct {host, port, username}, and
// runtime.ports [{private, public, type, ip}] (runtime is null unless RUNNING).
//
// status: PROVISIONING → pending, STARTING → starting, RUNNING → running,
// EXITED → stopped, ERROR → error, TERMINATED → terminated, anything else →
// unknown (RawState keeps it).
//
// Interruptible (spot) pods: RunPod stops a spot pod with a ~5 s SIGTERM
// warning and keeps its volume; v2 does not say who stopped a pod, so an
// interruptible pod in EXITED is reported as preempted with Interrupted=true.
// The coordinator must not read its own stop of a spot pod as a preemption
// (it knows which stops it issued).
//
// Price: cost is USD/h and is 0.0 while the pod is EXITED or TERMINATED. That
// 0 is a measured price (Source "runpod:cost"), not an unknown one: a stopped
// pod costs no GPU time (its volume storage, billed per GB-month, is not in
// cost). An absent or null cost leaves the price unknown.
//
// SSH: the proxy endpoint is ssh.proxy (ssh.runpod.io:22, user
// "<podId>-<hash>"); the direct endpoint is ssh.direct (public IP, public port
// of 22/tcp, user root), or, when ssh.direct is null, the runtime port whose
// private port is 22 (user root). GPU memory, CPUs and RAM are not in the v2
// pod object and are left 0 (unknown).
package runpod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/providers"
	"github.com/ringmesh/ringmesh/pkg/providers/internal/restapi"
)

// Name is the provider name.
const Name = "runpod"

// DefaultBaseURL is the RunPod API host; the client adds the /v2/... paths.
const DefaultBaseURL = "https://api.runpod.io"

// Options configures a Client.
type Options struct {
	BaseURL    string       // default DefaultBaseURL
	APIKey     string       // required
	HTTPClient *http.Client // default: 30s timeout
	Log        zerolog.Logger
}

// Client talks to RunPod REST v2. It is safe for concurrent use.
type Client struct {
	api *restapi.Client
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
	return &Client{api: api}, nil
}

// Name returns "runpod".
func (c *Client) Name() string { return Name }

// Capabilities: pods stop and start; a stopped pod bills only its volume;
// community and spot pods may vanish with a ~5 s warning.
func (c *Client) Capabilities() providers.Capabilities {
	return providers.Capabilities{CanStop: true, CanStart: true, Ephemeral: mesh.Facts(mesh.ProviderRunPod).Ephemeral, NoticeSeconds: mesh.Facts(mesh.ProviderRunPod).NoticeSeconds()}
}

// List returns every pod of the account.
func (c *Client) List(ctx context.Context) ([]providers.Instance, error) {
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpList, Method: http.MethodGet, Path: "/v2/pods"})
	if err != nil {
		return nil, err
	}
	var body struct {
		Pods *[]json.RawMessage `json:"pods"`
	}
	if err := c.api.Decode(providers.OpList, resp, &body); err != nil {
		return nil, err
	}
	if body.Pods == nil {
		return nil, c.api.Invalid(providers.OpList, resp.Status, `field pods: missing or null`)
	}
	out := make([]providers.Instance, 0, len(*body.Pods))
	for i, raw := range *body.Pods {
		inst, err := parsePod(raw)
		if err != nil {
			return nil, c.api.Invalid(providers.OpList, resp.Status, "pods[%d]: %v", i, err)
		}
		out = append(out, inst)
	}
	return out, nil
}

// Get returns one pod; a 404 is providers.ErrNotFound.
func (c *Client) Get(ctx context.Context, id string) (providers.Instance, error) {
	if err := checkID(providers.OpGet, id); err != nil {
		return providers.Instance{}, err
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: providers.OpGet, Method: http.MethodGet, Path: podPath(id)})
	if err != nil {
		return providers.Instance{}, err
	}
	inst, err := parsePod(resp.Body)
	if err != nil {
		return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "%v", err)
	}
	if inst.ID != id {
		return providers.Instance{}, c.api.Invalid(providers.OpGet, resp.Status, "asked for pod %s, got %s", id, inst.ID)
	}
	return inst, nil
}

// Start resumes an EXITED pod.
func (c *Client) Start(ctx context.Context, id string) error {
	return c.action(ctx, providers.OpStart, id, "start", "RUNNING", "STARTING", "PROVISIONING")
}

// Stop stops a pod, keeping its volume.
func (c *Client) Stop(ctx context.Context, id string) error {
	return c.action(ctx, providers.OpStop, id, "stop", "EXITED")
}

func (c *Client) action(ctx context.Context, op, id, action string, already ...string) error {
	if err := checkID(op, id); err != nil {
		return err
	}
	resp, err := c.api.Do(ctx, restapi.Request{Op: op, Method: http.MethodPost, Path: podPath(id) + "/action",
		Body: map[string]string{"action": action}})
	if err == nil {
		if len(strings.TrimSpace(string(resp.Body))) > 0 { // 200 Pod: check it parses
			if _, perr := parsePod(resp.Body); perr != nil {
				return c.api.Invalid(op, resp.Status, "%v", perr)
			}
		}
		return nil
	}
	if providers.KindOf(err) != providers.KindConflict {
		return err
	}
	// 409: maybe the pod is already where we want it.
	cur, gerr := c.Get(ctx, id)
	if gerr != nil {
		return err
	}
	for _, s := range already {
		if cur.RawState == s {
			return nil
		}
	}
	return err
}

// Terminate deletes a pod; one that is already gone counts as deleted.
func (c *Client) Terminate(ctx context.Context, id string) error {
	if err := checkID(providers.OpTerminate, id); err != nil {
		return err
	}
	_, err := c.api.Do(ctx, restapi.Request{Op: providers.OpTerminate, Method: http.MethodDelete, Path: podPath(id)})
	if providers.KindOf(err) == providers.KindNotFound {
		return nil
	}
	return err
}

func podPath(id string) string { return "/v2/pods/" + url.PathEscape(id) }

// checkID refuses ids that are not RunPod pod ids ([A-Za-z0-9], ≤ 64).
func checkID(op, id string) error {
	ok := id != "" && len(id) <= 64
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			ok = false
			break
		}
	}
	if !ok {
		return &providers.Error{Provider: Name, Op: op, Kind: providers.KindInvalid,
			Err: fmt.Errorf("pod id %q is not a RunPod pod id (letters and digits)", id)}
	}
	return nil
}

// parseError reads an RFC 9457 problem document.
func parseError(_ int, _ http.Header, body []byte) restapi.ErrorInfo {
	var p struct {
		Title  string          `json:"title"`
		Detail string          `json:"detail"`
		Errors json.RawMessage `json:"errors"`
		// v1 style
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &p) != nil {
		return restapi.ErrorInfo{}
	}
	var parts []string
	for _, s := range []string{p.Title, p.Detail, p.Message, p.Error} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return restapi.ErrorInfo{Message: strings.Join(parts, ": ")}
}

type sshInfo struct {
	Host     *string `json:"host"`
	Port     *int    `json:"port"`
	Username *string `json:"username"`
}

type runtimePort struct {
	Private *int    `json:"private"`
	Public  *int    `json:"public"`
	Type    *string `json:"type"`
	IP      *string `json:"ip"`
}

// wirePod is the subset of the v2 Pod object the client reads.
type wirePod struct {
	ID            *string  `json:"id"`
	Name          *string  `json:"name"`
	Status        *string  `json:"status"`
	Cost          *float64 `json:"cost"`
	Interruptible *bool    `json:"interruptible"`
	DataCenterID  *string  `json:"dataCenterId"`
	CreatedAt     *string  `json:"createdAt"`
	Cloud         *string  `json:"cloud"`
	// Env is read for the ringmesh launch markers only (RINGMESH_REQUEST_ID, RINGMESH_NODE).
	Env json.RawMessage `json:"env"`
	GPU *struct {
		ID    *string  `json:"id"`
		Count *float64 `json:"count"`
	} `json:"gpu"`
	Runtime *struct {
		Ports []runtimePort `json:"ports"`
	} `json:"runtime"`
	SSH *struct {
		Proxy  *sshInfo `json:"proxy"`
		Direct *sshInfo `json:"direct"`
	} `json:"ssh"`
}

// parsePod maps one v2 Pod object; errors name the field.
func parsePod(raw []byte) (providers.Instance, error) {
	var w wirePod
	if err := json.Unmarshal(raw, &w); err != nil {
		return providers.Instance{}, errors.New(restapi.DescribeJSONError(err, raw))
	}
	if w.ID == nil || *w.ID == "" {
		return providers.Instance{}, errors.New("field id: missing or empty")
	}
	inst := providers.Instance{
		ID:            *w.ID,
		Provider:      Name,
		Name:          str(w.Name),
		RawState:      str(w.Status),
		Region:        str(w.DataCenterID),
		Interruptible: w.Interruptible != nil && *w.Interruptible,
	}
	switch inst.RawState {
	case "PROVISIONING":
		inst.State = providers.StatePending
	case "STARTING":
		inst.State = providers.StateStarting
	case "RUNNING":
		inst.State = providers.StateRunning
	case "EXITED":
		inst.State = providers.StateStopped
		if inst.Interruptible {
			inst.State, inst.Interrupted = providers.StatePreempted, true
		}
	case "ERROR":
		inst.State = providers.StateError
	case "TERMINATED":
		inst.State = providers.StateTerminated
	default:
		inst.State = providers.StateUnknown
	}
	if c := str(w.Cloud); c != "" {
		inst.Labels = map[string]string{"cloud": c}
	}
	inst.Labels = envLabels(w.Env, inst.Labels)
	if w.Cost != nil {
		if *w.Cost < 0 || math.IsNaN(*w.Cost) {
			return providers.Instance{}, fmt.Errorf("field cost: %v is not a price", *w.Cost)
		}
		inst.Price = providers.Price{PerHour: *w.Cost, Currency: "USD", Source: "runpod:cost"}
	}
	if w.GPU != nil {
		inst.GPUModel = providers.NormalizeGPU(str(w.GPU.ID))
		if w.GPU.Count != nil {
			if *w.GPU.Count < 0 || *w.GPU.Count != math.Trunc(*w.GPU.Count) {
				return providers.Instance{}, fmt.Errorf("field gpu.count: %v is not a GPU count", *w.GPU.Count)
			}
			inst.GPUCount = int(*w.GPU.Count)
		}
	}
	if s := str(w.CreatedAt); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return providers.Instance{}, fmt.Errorf("field createdAt: %q is not an RFC 3339 time", s)
		}
		inst.CreatedAt = t.UTC()
	}

	if w.SSH != nil && w.SSH.Proxy != nil {
		ep, ok, err := endpoint(providers.EndpointProxy, "ssh.proxy", w.SSH.Proxy, "")
		if err != nil {
			return providers.Instance{}, err
		}
		if ok {
			inst.SSH = append(inst.SSH, ep)
		}
	}
	direct := false
	if w.SSH != nil && w.SSH.Direct != nil {
		ep, ok, err := endpoint(providers.EndpointDirect, "ssh.direct", w.SSH.Direct, "root")
		if err != nil {
			return providers.Instance{}, err
		}
		if ok {
			inst.SSH = append(inst.SSH, ep)
			inst.PublicIP = ep.Host
			direct = true
		}
	}
	if w.Runtime != nil {
		for i, p := range w.Runtime.Ports {
			if p.Private == nil || *p.Private != 22 || (p.Type != nil && !strings.EqualFold(*p.Type, "tcp")) {
				continue
			}
			if p.Public == nil || *p.Public <= 0 || *p.Public > 65535 {
				return providers.Instance{}, fmt.Errorf("field runtime.ports[%d].public: missing or not a port", i)
			}
			ip, ok := providers.CleanHost(str(p.IP))
			if !ok {
				continue
			}
			if inst.PublicIP == "" {
				inst.PublicIP = ip
			}
			if !direct {
				inst.SSH = append(inst.SSH, providers.SSHEndpoint{Kind: providers.EndpointDirect, Host: ip, Port: *p.Public, User: "root"})
				direct = true
			}
		}
	}
	return inst, nil
}

func endpoint(kind providers.EndpointKind, field string, s *sshInfo, defUser string) (providers.SSHEndpoint, bool, error) {
	host, ok := providers.CleanHost(str(s.Host)) // trimmed; no endpoint from a string that is no host
	if !ok || s.Port == nil {
		return providers.SSHEndpoint{}, false, nil
	}
	if *s.Port <= 0 || *s.Port > 65535 {
		return providers.SSHEndpoint{}, false, fmt.Errorf("field %s.port: %d is not a port", field, *s.Port)
	}
	user := str(s.Username)
	if user == "" {
		user = defUser
	}
	if user == "" {
		return providers.SSHEndpoint{}, false, fmt.Errorf("field %s.username: missing", field)
	}
	return providers.SSHEndpoint{Kind: kind, Host: host, Port: *s.Port, User: user}, true, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
