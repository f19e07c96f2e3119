// Package vastfake is a stateful, in-memory fake of the part of the Vast.ai
// REST API that ringmesh uses (docs/provider-apis.md §1), served by an
// httptest.Server on loopback. It is meant for tests and the demo mode.
//
// It serves
//
//	GET    /api/v1/instances/?limit=&after_token=   paged list (≤ 25 rows, next_token)
//	GET    /api/v0/instances/                        legacy list {"instances":[…]}
//	GET    /api/v0/instances/{id}/                   {"instances": {…}} or {"instances": null}
//	PUT    /api/v0/instances/{id}/                   {"state":"running"|"stopped"} or {"label":"…"}
//	DELETE /api/v0/instances/{id}/                   destroy; 404 no_such_instance when gone
//	POST   /api/v0/bundles/                          offer search (offers.go)
//	PUT    /api/v0/asks/{id}/                        rent an offer: {"success":true,"new_contract":N} (launch.go)
//
// with Bearer (or legacy ?api_key=) authentication. Instances move through
// states over time: a new instance goes null → loading → running, stop takes
// it to stopped, start back through loading to running, each after the
// configured delay. Preempt simulates being outbid, ChangeSSHPort a restart
// that moves the SSH endpoints. Inject adds faults (429 with Vast's plain-text
// body and no Retry-After, 5xx, timeouts, malformed bodies, auth errors); the
// call log records every request.
package vastfake

import (
	"encoding/base64"
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
const DefaultAPIKey = "vast-fake-key"

// Options configures a Server.
type Options struct {
	APIKey string // accepted key (default DefaultAPIKey)
	// PageSize is the most rows per v1 list page (default and maximum 25).
	PageSize int
	// BootDelay: a new instance stays null (provisioning) for BootDelay/2,
	// then loading, and is running after BootDelay.
	BootDelay time.Duration
	// StartDelay: after start, loading for StartDelay, then running.
	StartDelay time.Duration
	// StopDelay: after stop, running (intended stopped) for StopDelay, then stopped.
	StopDelay time.Duration
	// Now is the fake's clock (default time.Now).
	Now func() time.Time
}

// PortBinding is one entry of the "ports" map.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// Instance is the fake's instance record, serialised with Vast's field names.
// Nullable fields are pointers.
type Instance struct {
	ID                int64                    `json:"id"`
	MachineID         int64                    `json:"machine_id"`
	HostID            int64                    `json:"host_id"`
	Label             *string                  `json:"label"`
	ActualStatus      *string                  `json:"actual_status"`
	IntendedStatus    string                   `json:"intended_status"`
	CurState          string                   `json:"cur_state"`
	NextState         string                   `json:"next_state"`
	StatusMsg         string                   `json:"status_msg"`
	ImageUUID         string                   `json:"image_uuid"`
	ImageRuntype      string                   `json:"image_runtype"`
	GPUName           string                   `json:"gpu_name"`
	NumGPUs           int                      `json:"num_gpus"`
	GPURAM            float64                  `json:"gpu_ram"`
	GPUTotalRAM       float64                  `json:"gpu_totalram"`
	CPUCoresEffective float64                  `json:"cpu_cores_effective"`
	CPURAM            float64                  `json:"cpu_ram"`
	DiskSpace         float64                  `json:"disk_space"`
	PublicIPAddr      string                   `json:"public_ipaddr"`
	SSHHost           string                   `json:"ssh_host"`
	SSHPort           int                      `json:"ssh_port"`
	SSHIdx            string                   `json:"ssh_idx"`
	DirectPortStart   int                      `json:"direct_port_start"`
	DirectPortEnd     int                      `json:"direct_port_end"`
	Ports             map[string][]PortBinding `json:"ports,omitempty"`
	DphBase           float64                  `json:"dph_base"`
	DphTotal          float64                  `json:"dph_total"`
	MinBid            float64                  `json:"min_bid"`
	IsBid             bool                     `json:"is_bid"`
	StartDate         float64                  `json:"start_date"`
	Geolocation       string                   `json:"geolocation"`
	Verification      string                   `json:"verification"`
	Reliability2      float64                  `json:"reliability2"`
	// Costs is the "instance" sub-object (totalHour, diskHour,
	// discountedTotalPerHour); nil omits it.
	Costs *Costs `json:"instance,omitempty"`
	// ExtraEnv is the container environment as Vast lists it: pairs
	// [name, value], "-e K=V" options of the create body as [K, V].
	ExtraEnv [][2]string `json:"extra_env,omitempty"`
	// Onstart is the script run at container start (create body "onstart").
	Onstart string `json:"onstart,omitempty"`

	// DirectSSHPort is the host port mapped to 22/tcp while running (0: none).
	// Not serialised: it becomes ports["22/tcp"].
	DirectSSHPort int `json:"-"`
}

// Costs is the per-hour breakdown Vast shows under "instance" (USD/h).
type Costs struct {
	TotalHour              float64 `json:"totalHour"`
	DiskHour               float64 `json:"diskHour"`
	DiscountedTotalPerHour float64 `json:"discountedTotalPerHour"`
}

type step struct {
	at    time.Time
	apply func(*Instance)
}

type record struct {
	inst  Instance
	steps []step
}

// Server is the fake Vast API.
type Server struct {
	*fakeapi.Harness
	srv  *httptest.Server
	opts Options

	mu      sync.Mutex
	insts   map[int64]*record
	nextID  int64
	asks    []Offer // offers served by POST /api/v0/bundles/ (offers.go)
	creates int     // create calls applied (launch.go)
}

// New starts a fake on a loopback port. Close it when done.
func New(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.PageSize <= 0 || opts.PageSize > 25 {
		opts.PageSize = 25
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{Harness: fakeapi.NewHarness(opts.Now), opts: opts, insts: map[int64]*record{}, nextID: 31337000}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/instances/{$}", s.handleListV1)
	mux.HandleFunc("GET /api/v0/instances/{$}", s.handleListLegacy)
	mux.HandleFunc("GET /api/v0/instances/{id}/{$}", s.handleShow)
	mux.HandleFunc("PUT /api/v0/instances/{id}/{$}", s.handlePut)
	mux.HandleFunc("DELETE /api/v0/instances/{id}/{$}", s.handleDelete)
	mux.HandleFunc("POST /api/v0/bundles/{$}", s.handleBundles)
	mux.HandleFunc("PUT /api/v0/asks/{id}/{$}", s.handleCreate)
	s.srv = httptest.NewServer(s.Wrap(render, s.auth(mux)))
	return s
}

// URL is the base URL to give the client (Options.BaseURL).
func (s *Server) URL() string { return s.srv.URL }

// APIKey is the key the fake accepts.
func (s *Server) APIKey() string { return s.opts.APIKey }

// Close releases held requests and shuts the server down.
func (s *Server) Close() {
	s.Shutdown()
	s.srv.Close()
}

func strp(s string) *string { return &s }

// Add stores an instance as given (its state is not changed) and returns its
// id. A zero ID gets the next free one. If DirectSSHPort is set and the
// instance is running, ports["22/tcp"] is filled from it.
func (s *Server) Add(in Instance) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.ID == 0 {
		s.nextID++
		in.ID = s.nextID
	} else if in.ID > s.nextID {
		s.nextID = in.ID
	}
	if in.ActualStatus != nil && *in.ActualStatus == "running" {
		s.openPorts(&in)
	}
	s.insts[in.ID] = &record{inst: in}
	return in.ID
}

// Launch adds a new instance that boots: null (provisioning) → loading →
// running over Options.BootDelay.
func (s *Server) Launch(in Instance) int64 {
	in.ActualStatus = nil
	in.IntendedStatus, in.CurState, in.NextState = "running", "running", "running"
	in.Ports = nil
	id := s.Add(in)
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.insts[id]
	r.steps = []step{
		{at: now.Add(s.opts.BootDelay / 2), apply: func(i *Instance) { i.ActualStatus = strp("loading") }},
		{at: now.Add(s.opts.BootDelay), apply: func(i *Instance) {
			i.ActualStatus = strp("running")
			s.openPorts(i)
		}},
	}
	s.settle(r, now)
	return id
}

// Instance returns the fake's current record of id.
func (s *Server) Instance(id int64) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.insts[id]
	if !ok {
		return Instance{}, false
	}
	s.settle(r, s.opts.Now())
	return r.inst, true
}

// Len returns how many instances exist.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.insts)
}

// Update changes a stored instance in place (e.g. to set an odd state such as
// "offline" or "frozen"); pending transitions are dropped.
func (s *Server) Update(id int64, fn func(*Instance)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.insts[id]
	if !ok {
		return fmt.Errorf("vastfake: no instance %d", id)
	}
	s.settle(r, s.opts.Now())
	r.steps = nil
	fn(&r.inst)
	return nil
}

// Preempt simulates an interruptible instance being outbid: its container is
// stopped while the user still intends it to run (intended_status stays
// "running"), cur_state becomes "stopped". It fails for on-demand instances.
func (s *Server) Preempt(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.insts[id]
	if !ok {
		return fmt.Errorf("vastfake: no instance %d", id)
	}
	if !r.inst.IsBid {
		return fmt.Errorf("vastfake: instance %d is on-demand (is_bid=false); only bid instances are outbid", id)
	}
	s.settle(r, s.opts.Now())
	r.steps = nil
	r.inst.ActualStatus = strp("stopped")
	r.inst.CurState = "stopped"
	r.inst.NextState = "stopped"
	r.inst.IntendedStatus = "running"
	r.inst.StatusMsg = "instance stopped: outbid"
	r.inst.Ports = nil
	return nil
}

// ChangeSSHPort simulates a restart that moves the instance's endpoints: the
// proxy port and the direct (22/tcp host) port both change. It returns the new
// proxy and direct ports.
func (s *Server) ChangeSSHPort(id int64) (proxyPort, directPort int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.insts[id]
	if !ok {
		return 0, 0, fmt.Errorf("vastfake: no instance %d", id)
	}
	s.settle(r, s.opts.Now())
	r.inst.SSHPort += 7
	if r.inst.DirectSSHPort == 0 {
		r.inst.DirectSSHPort = 40000
	}
	r.inst.DirectSSHPort += 3
	if r.inst.Ports != nil {
		s.openPorts(&r.inst)
	}
	return r.inst.SSHPort, r.inst.DirectSSHPort, nil
}

// openPorts fills ports["22/tcp"] from DirectSSHPort (caller holds s.mu or owns i).
func (s *Server) openPorts(i *Instance) {
	if i.DirectSSHPort == 0 {
		return
	}
	if i.Ports == nil {
		i.Ports = map[string][]PortBinding{}
	}
	i.Ports["22/tcp"] = []PortBinding{{HostIP: "0.0.0.0", HostPort: strconv.Itoa(i.DirectSSHPort)}}
}

// settle applies transitions that are due (caller holds s.mu).
func (s *Server) settle(r *record, now time.Time) {
	for len(r.steps) > 0 && !now.Before(r.steps[0].at) {
		r.steps[0].apply(&r.inst)
		r.steps = r.steps[1:]
	}
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fakeapi.BearerOrQueryKey(r, s.opts.APIKey, true) {
			render(w, r, Fault{Kind: AuthError})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// render writes a fault the way Vast does.
func render(w http.ResponseWriter, r *http.Request, f Fault) {
	switch f.Kind {
	case RateLimit:
		// Vast: plain text, no Retry-After header.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, "API requests too frequent")
	case ServerError:
		st := f.Status
		if st == 0 {
			st = http.StatusInternalServerError
		}
		writeJSON(w, st, map[string]any{"success": false, "error": "server_error", "msg": "Internal server error"})
	case Malformed:
		body := f.Body
		if body == "" {
			body = `{"success": true, "instances": [{"id": 1, "actual_status": "runn`
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, body)
	case AuthError:
		writeJSON(w, http.StatusUnauthorized, map[string]any{"success": false, "error": "auth_error", "msg": "Invalid user key"})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]any{"success": false, "error": "fake", "msg": "unknown fault " + string(f.Kind)})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) snapshot() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	out := make([]Instance, 0, len(s.insts))
	for _, r := range s.insts {
		s.settle(r, now)
		out = append(out, r.inst)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

type pageToken struct {
	After int64 `json:"after_id"`
}

func (s *Server) handleListV1(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := s.opts.PageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_request", "msg": "limit must be a positive integer"})
			return
		}
		if n < limit {
			limit = n
		}
	}
	var after int64
	if tok := q.Get("after_token"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		var pt pageToken
		if err == nil {
			err = json.Unmarshal(b, &pt)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_token", "msg": "after_token is not valid"})
			return
		}
		after = pt.After
	}
	all := s.snapshot()
	var page []Instance
	i := sort.Search(len(all), func(i int) bool { return all[i].ID > after })
	for ; i < len(all) && len(page) < limit; i++ {
		page = append(page, all[i])
	}
	var next *string
	if i < len(all) && len(page) > 0 {
		b, _ := json.Marshal(pageToken{After: page[len(page)-1].ID})
		t := base64.RawURLEncoding.EncodeToString(b)
		next = &t
	}
	labels := map[string]int{}
	for _, in := range all {
		if in.Label != nil {
			labels[*in.Label]++
		} else {
			labels[""]++
		}
	}
	if page == nil {
		page = []Instance{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true, "instances_found": len(page), "total_instances": len(all),
		"label_counts": labels, "next_token": next, "instances": page,
	})
}

func (s *Server) handleListLegacy(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"instances": s.snapshot()})
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "instance id must be an integer"})
		return 0, false
	}
	return id, true
}

func (s *Server) handleShow(w http.ResponseWriter, r *http.Request) {
	id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	inst, found := s.Instance(id)
	if !found {
		writeJSON(w, http.StatusOK, map[string]any{"instances": nil})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"instances": inst})
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var body struct {
		State *string `json:"state"`
		Label *string `json:"label"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "body is not JSON: " + err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found := s.insts[id]
	if !found {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "no_such_instance", "msg": fmt.Sprintf("Instance %d not found.", id)})
		return
	}
	now := s.opts.Now()
	s.settle(rec, now)
	if body.Label != nil {
		rec.inst.Label = body.Label
	}
	if body.State != nil {
		switch *body.State {
		case "stopped":
			rec.steps = nil
			rec.inst.IntendedStatus, rec.inst.NextState = "stopped", "stopped"
			rec.steps = []step{{at: now.Add(s.opts.StopDelay), apply: func(i *Instance) {
				i.ActualStatus = strp("stopped")
				i.CurState = "stopped"
				i.Ports = nil
			}}}
		case "running":
			rec.steps = nil
			rec.inst.IntendedStatus, rec.inst.NextState = "running", "running"
			if a := rec.inst.ActualStatus; a == nil || *a != "running" {
				rec.steps = []step{
					{at: now, apply: func(i *Instance) {
						i.ActualStatus = strp("loading")
						i.CurState = "running"
					}},
					{at: now.Add(s.opts.StartDelay), apply: func(i *Instance) {
						i.ActualStatus = strp("running")
						s.openPorts(i)
					}},
				}
			}
		default:
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "state must be running or stopped"})
			return
		}
		s.settle(rec, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := s.lookup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	_, found := s.insts[id]
	delete(s.insts, id)
	s.mu.Unlock()
	if !found {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "no_such_instance", "msg": fmt.Sprintf("Instance %d not found.", id)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "msg": fmt.Sprintf("destroying instance %d.", id)})
}

// SeedInstance returns a typical running on-demand instance for tests and the
// demo: label, RTX 4090, proxy ssh<N>.vast.ai and a direct endpoint.
func SeedInstance(id int64, label string) Instance {
	running := "running"
	return Instance{
		ID: id, MachineID: 4242, HostID: 77, Label: &label,
		ActualStatus: &running, IntendedStatus: "running", CurState: "running", NextState: "running",
		StatusMsg: "success, running vastai/base-image/ssh", ImageUUID: "vastai/base-image:cuda-12.4", ImageRuntype: "ssh_direc ssh_proxy",
		GPUName: "RTX 4090", NumGPUs: 1, GPURAM: 24564, GPUTotalRAM: 24564, CPUCoresEffective: 8, CPURAM: 64000, DiskSpace: 20,
		PublicIPAddr: "203.0.113.45", SSHHost: "ssh5.vast.ai", SSHPort: 10600, SSHIdx: "5",
		DirectPortStart: 40000, DirectPortEnd: 40010, DirectSSHPort: 40001,
		DphBase: 0.30, DphTotal: 0.3021, MinBid: 0.15, StartDate: 1764400000.12,
		Geolocation: "Texas, US", Verification: "verified", Reliability2: 0.993,
	}
}
