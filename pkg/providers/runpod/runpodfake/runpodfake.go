// Package runpodfake is a stateful, in-memory fake of the RunPod REST v2 pod
// API (docs/provider-apis.md §2b) on a loopback httptest.Server, for
// tests and the demo mode.
//
// It serves
//
//	GET    /v2/pods                 {"pods":[…]}
//	POST   /v2/pods                 create a pod (launch.go): 201 Pod
//	GET    /v2/pods/{id}            Pod, or 404 problem+json
//	POST   /v2/pods/{id}/action     {"action":"start|stop|restart|terminate"}; 409 when invalid for the status
//	DELETE /v2/pods/{id}            204, or 404 when gone
//
// with Bearer authentication. Pods move through states over time
// (PROVISIONING → STARTING → RUNNING; stop → EXITED; start → STARTING →
// RUNNING), carry the documented allowed "actions", cost 0 while EXITED,
// runtime only while RUNNING, and ssh.proxy / ssh.direct endpoints.
// Preempt stops an interruptible pod; ChangeSSHPort moves its public SSH
// port. Faults: 429 problem+json with Retry-After, 5xx, timeouts, malformed
// bodies, 401. The call log records every request.
package runpodfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers/internal/fakeapi"
)

// Fault injection, re-exported from the shared harness.
type (
	Fault     = fakeapi.Fault
	FaultKind = fakeapi.FaultKind
	Call      = fakeapi.Call
)

// Fault kinds.
const (
	RateLimit   = fakeapi.RateLimit
	ServerError = fakeapi.ServerError
	Timeout     = fakeapi.Timeout
	Malformed   = fakeapi.Malformed
	AuthError   = fakeapi.AuthError
)

// DefaultAPIKey is the key the fake accepts when Options.APIKey is empty.
const DefaultAPIKey = "runpod-fake-key"

// Options configures a Server.
type Options struct {
	APIKey string
	// BootDelay: a launched pod is PROVISIONING for BootDelay/2, STARTING,
	// then RUNNING after BootDelay.
	BootDelay time.Duration
	// StartDelay: after start (or restart), STARTING for StartDelay, then RUNNING.
	StartDelay time.Duration
	// StopDelay: after stop, RUNNING for StopDelay, then EXITED.
	StopDelay time.Duration
	Now       func() time.Time
}

// GPU is the pod's GPU block.
type GPU struct {
	ID    string `json:"id"`
	Count int    `json:"count"`
}

// SSHInfo is one entry of the ssh block.
type SSHInfo struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	Command  string `json:"command"`
}

// SSH is the pod's ssh block.
type SSH struct {
	Proxy  *SSHInfo `json:"proxy"`
	Direct *SSHInfo `json:"direct"`
}

// RuntimePort is one runtime port mapping.
type RuntimePort struct {
	Private int    `json:"private"`
	Public  int    `json:"public"`
	Type    string `json:"type"`
	IP      string `json:"ip"`
}

// Runtime is present only while RUNNING.
type Runtime struct {
	Uptime int              `json:"uptime"`
	GPUs   []map[string]any `json:"gpus"`
	Ports  []RuntimePort    `json:"ports"`
}

// Pod is the fake's pod record, serialised with v2 field names.
type Pod struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Status        string            `json:"status"`
	Actions       []string          `json:"actions"`
	Image         string            `json:"image"`
	Args          []string          `json:"args"`
	Disk          int               `json:"disk"`
	Mounts        map[string]any    `json:"mounts"`
	Ports         []string          `json:"ports"`
	Env           map[string]string `json:"env"`
	Registry      any               `json:"registry"`
	Cloud         string            `json:"cloud"`
	DataCenterID  string            `json:"dataCenterId"`
	CUDAVersion   string            `json:"cudaVersion"`
	SSH           SSH               `json:"ssh"`
	Template      any               `json:"template"`
	Cost          float64           `json:"cost"`
	Locked        bool              `json:"locked"`
	Runtime       *Runtime          `json:"runtime"`
	CreatedAt     string            `json:"createdAt"`
	StartedAt     *string           `json:"startedAt"`
	GPU           *GPU              `json:"gpu,omitempty"`
	Interruptible bool              `json:"interruptible"`

	// Not serialised: the running price (cost while RUNNING), the public IP
	// and the public port mapped to 22/tcp.
	RatePerHour float64 `json:"-"`
	PublicIP    string  `json:"-"`
	SSHPort     int     `json:"-"`
}

type step struct {
	at    time.Time
	apply func(*Pod)
}

type record struct {
	pod   Pod
	steps []step
}

// Server is the fake RunPod API.
type Server struct {
	*fakeapi.Harness
	srv  *httptest.Server
	opts Options

	mu      sync.Mutex
	pods    map[string]*record
	seq     int
	gpus    []GPUType // GraphQL gpuTypes (offers.go)
	creates int       // create calls applied (launch.go)
}

// New starts a fake on a loopback port. Close it when done.
func New(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{Harness: fakeapi.NewHarness(opts.Now), opts: opts, pods: map[string]*record{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/pods", s.handleList)
	mux.HandleFunc("POST /v2/pods", s.handleCreate)
	mux.HandleFunc("POST /graphql", s.handleGraphQL)
	mux.HandleFunc("GET /v2/pods/{id}", s.handleGet)
	mux.HandleFunc("POST /v2/pods/{id}/action", s.handleAction)
	mux.HandleFunc("DELETE /v2/pods/{id}", s.handleDelete)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "Not Found", "no route "+r.Method+" "+r.URL.Path)
	})
	s.srv = httptest.NewServer(s.Wrap(render, s.auth(mux)))
	return s
}

// URL is the base URL to give the client.
func (s *Server) URL() string { return s.srv.URL }

// APIKey is the key the fake accepts.
func (s *Server) APIKey() string { return s.opts.APIKey }

// Close releases held requests and shuts the server down.
func (s *Server) Close() {
	s.Shutdown()
	s.srv.Close()
}

// Add stores a pod as given (status unchanged) and returns its id; an empty
// ID gets a generated one. Derived fields (actions, cost, runtime, ssh) are
// filled from Status, RatePerHour, PublicIP and SSHPort.
func (s *Server) Add(p Pod) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == "" {
		s.seq++
		p.ID = fmt.Sprintf("fakepod%07d", s.seq)
	}
	if p.CreatedAt == "" {
		p.CreatedAt = s.opts.Now().UTC().Format(time.RFC3339)
	}
	derive(&p)
	s.pods[p.ID] = &record{pod: p}
	return p.ID
}

// Launch adds a pod that boots: PROVISIONING → STARTING → RUNNING over BootDelay.
func (s *Server) Launch(p Pod) string {
	p.Status = "PROVISIONING"
	id := s.Add(p)
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.pods[id]
	r.steps = []step{
		{at: now.Add(s.opts.BootDelay / 2), apply: func(p *Pod) { p.Status = "STARTING" }},
		{at: now.Add(s.opts.BootDelay), apply: func(p *Pod) { p.Status = "RUNNING" }},
	}
	s.settle(r, now)
	return id
}

// Pod returns the current record of id.
func (s *Server) Pod(id string) (Pod, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.pods[id]
	if !ok {
		return Pod{}, false
	}
	s.settle(r, s.opts.Now())
	return r.pod, true
}

// Len returns how many pods exist.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pods)
}

// Update changes a stored pod (pending transitions are dropped); derived
// fields are recomputed.
func (s *Server) Update(id string, fn func(*Pod)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.pods[id]
	if !ok {
		return fmt.Errorf("runpodfake: no pod %s", id)
	}
	s.settle(r, s.opts.Now())
	r.steps = nil
	fn(&r.pod)
	derive(&r.pod)
	return nil
}

// Preempt simulates RunPod reclaiming an interruptible (spot) pod: it goes to
// EXITED at once. It fails for on-demand pods.
func (s *Server) Preempt(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.pods[id]
	if !ok {
		return fmt.Errorf("runpodfake: no pod %s", id)
	}
	if !r.pod.Interruptible {
		return fmt.Errorf("runpodfake: pod %s is not interruptible", id)
	}
	r.steps = nil
	r.pod.Status = "EXITED"
	derive(&r.pod)
	return nil
}

// ChangeSSHPort simulates a restart moving the public port mapped to 22/tcp;
// it returns the new port.
func (s *Server) ChangeSSHPort(id string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.pods[id]
	if !ok {
		return 0, fmt.Errorf("runpodfake: no pod %s", id)
	}
	s.settle(r, s.opts.Now())
	if r.pod.SSHPort == 0 {
		r.pod.SSHPort = 34000
	}
	r.pod.SSHPort += 11
	derive(&r.pod)
	return r.pod.SSHPort, nil
}

// derive recomputes the fields that follow from the status.
func derive(p *Pod) {
	switch p.Status {
	case "RUNNING":
		p.Actions = []string{"stop", "restart", "terminate"}
	case "EXITED", "ERROR":
		p.Actions = []string{"start", "terminate"}
	case "PROVISIONING", "STARTING":
		p.Actions = []string{"stop", "terminate"}
	default:
		p.Actions = []string{}
	}
	p.Cost = 0
	p.Runtime = nil
	p.SSH = SSH{Proxy: &SSHInfo{Host: "ssh.runpod.io", Port: 22, Username: p.ID + "-64411eb2",
		Command: "ssh " + p.ID + "-64411eb2@ssh.runpod.io -i ~/.ssh/id_ed25519"}}
	switch p.Status {
	case "RUNNING":
		p.Cost = p.RatePerHour
		p.Runtime = &Runtime{Uptime: 1, GPUs: []map[string]any{}}
		if p.PublicIP != "" && p.SSHPort > 0 {
			p.Runtime.Ports = []RuntimePort{{Private: 22, Public: p.SSHPort, Type: "tcp", IP: p.PublicIP}}
			p.SSH.Direct = &SSHInfo{Host: p.PublicIP, Port: p.SSHPort, Username: "root",
				Command: fmt.Sprintf("ssh root@%s -p %d -i ~/.ssh/id_ed25519", p.PublicIP, p.SSHPort)}
		}
	case "STARTING", "PROVISIONING":
		p.Cost = p.RatePerHour
	}
}

func (s *Server) settle(r *record, now time.Time) {
	for len(r.steps) > 0 && !now.Before(r.steps[0].at) {
		r.steps[0].apply(&r.pod)
		r.steps = r.steps[1:]
		derive(&r.pod)
	}
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fakeapi.BearerOrQueryKey(r, s.opts.APIKey, false) {
			render(w, r, Fault{Kind: AuthError})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": title, "status": status, "detail": detail})
}

func render(w http.ResponseWriter, r *http.Request, f Fault) {
	switch f.Kind {
	case RateLimit:
		ra := int(f.RetryAfter / time.Second)
		if f.RetryAfter > 0 && ra == 0 {
			ra = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		w.Header().Set("RateLimit", `"minute";r=0;t=12`)
		w.Header().Set("RateLimit-Policy", `"minute";q=60;w=60`)
		problem(w, http.StatusTooManyRequests, "Too Many Requests", "rate limit exceeded")
	case ServerError:
		st := f.Status
		if st == 0 {
			st = http.StatusInternalServerError
		}
		problem(w, st, http.StatusText(st), "something went wrong")
	case Malformed:
		body := f.Body
		if body == "" {
			body = `{"pods": [{"id": "abc", "status": 17`
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, body)
	case AuthError:
		problem(w, http.StatusUnauthorized, "Unauthorized", "invalid API key")
	default:
		problem(w, http.StatusInternalServerError, "Internal Server Error", "unknown fault "+string(f.Kind))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	now := s.opts.Now()
	pods := make([]Pod, 0, len(s.pods))
	for _, rec := range s.pods {
		s.settle(rec, now)
		pods = append(pods, rec.pod)
	}
	s.mu.Unlock()
	sort.Slice(pods, func(i, j int) bool { return pods[i].ID < pods[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"pods": pods})
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	p, ok := s.Pod(r.PathValue("id"))
	if !ok {
		problem(w, http.StatusNotFound, "Not Found", "pod "+r.PathValue("id")+" not found")
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var body struct {
		Action string `json:"action"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		problem(w, http.StatusBadRequest, "Bad Request", "body is not JSON: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.pods[id]
	if !ok {
		problem(w, http.StatusNotFound, "Not Found", "pod "+id+" not found")
		return
	}
	now := s.opts.Now()
	s.settle(rec, now)
	allowed := false
	for _, a := range rec.pod.Actions {
		if a == body.Action {
			allowed = true
		}
	}
	if !allowed {
		problem(w, http.StatusConflict, "Conflict",
			fmt.Sprintf("action %q is not allowed while the pod is %s (allowed: %v)", body.Action, rec.pod.Status, rec.pod.Actions))
		return
	}
	switch body.Action {
	case "stop":
		rec.steps = []step{{at: now.Add(s.opts.StopDelay), apply: func(p *Pod) { p.Status = "EXITED" }}}
	case "start", "restart":
		rec.steps = []step{
			{at: now, apply: func(p *Pod) { p.Status = "STARTING" }},
			{at: now.Add(s.opts.StartDelay), apply: func(p *Pod) {
				p.Status = "RUNNING"
				t := now.Add(s.opts.StartDelay).UTC().Format(time.RFC3339)
				p.StartedAt = &t
			}},
		}
	case "terminate":
		delete(s.pods, id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.settle(rec, now)
	writeJSON(w, http.StatusOK, rec.pod)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	_, ok := s.pods[id]
	delete(s.pods, id)
	s.mu.Unlock()
	if !ok {
		problem(w, http.StatusNotFound, "Not Found", "pod "+id+" not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SeedPod returns a typical running on-demand pod (RTX 4090, secure cloud).
func SeedPod(id, name string) Pod {
	return Pod{
		ID: id, Name: name, Status: "RUNNING", Image: "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
		Disk: 50, Mounts: map[string]any{"persistent": map[string]any{"size": 20, "path": "/workspace"}},
		Ports: []string{"22/tcp", "8888/http"}, Env: map[string]string{}, Cloud: "SECURE", DataCenterID: "EU-RO-1",
		CUDAVersion: "12.4", GPU: &GPU{ID: "NVIDIA GeForce RTX 4090", Count: 1},
		RatePerHour: 0.69, PublicIP: "203.0.113.77", SSHPort: 34446,
		CreatedAt: "2026-11-28T09:00:00Z",
	}
}
