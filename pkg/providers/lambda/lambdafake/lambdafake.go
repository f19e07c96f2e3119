// Package lambdafake is a stateful, in-memory fake of the Lambda Cloud
// instance API (docs/provider-apis.md §3) on a loopback
// httptest.Server, for tests and the demo mode.
//
// It serves
//
//	GET  /instances                         {"data":[…]} (instances not yet terminated)
//	GET  /instances/{id}                    {"data":{…}} or 404 global/object-does-not-exist
//	POST /instance-operations/terminate     {"instance_ids":[…]} → {"data":{"terminated_instances":[…]}}
//	POST /instance-operations/launch        {"region_name","instance_type_name","ssh_key_names",…} → {"data":{"instance_ids":[…]}} (launch.go)
//
// with Bearer or Basic ("KEY:") authentication. Instances boot (booting →
// active after BootDelay); terminate moves them to terminating and, after
// TerminateDelay, they are gone (404). Preempt marks one preempted. Faults and
// the call log come from the shared harness; a 429 uses the error envelope
// with code "global/too-many-requests" (that code is not in the published
// list: Lambda's 429 body is undocumented).
package lambdafake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
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
const DefaultAPIKey = "lambda-fake-key"

// Options configures a Server.
type Options struct {
	APIKey         string
	BootDelay      time.Duration // booting → active
	TerminateDelay time.Duration // terminating → gone
	Now            func() time.Time
}

// Region is the instance's region.
type Region struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Specs of an instance type.
type Specs struct {
	VCPUs      int `json:"vcpus"`
	MemoryGiB  int `json:"memory_gib"`
	StorageGiB int `json:"storage_gib"`
	GPUs       int `json:"gpus"`
}

// InstanceType is the instance's type, with its price.
type InstanceType struct {
	Name              string `json:"name"`
	Description       string `json:"description"`
	GPUDescription    string `json:"gpu_description"`
	PriceCentsPerHour int    `json:"price_cents_per_hour"`
	Specs             Specs  `json:"specs"`
}

// Action says whether an action is available.
type Action struct {
	Available         bool   `json:"available"`
	ReasonCode        string `json:"reason_code,omitempty"`
	ReasonDescription string `json:"reason_description,omitempty"`
}

// Tag is a key/value tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Instance is the fake's record, serialised with Lambda's field names.
type Instance struct {
	ID              string            `json:"id"`
	Name            string            `json:"name,omitempty"`
	IP              *string           `json:"ip,omitempty"`
	PrivateIP       *string           `json:"private_ip,omitempty"`
	Status          string            `json:"status"`
	SSHKeyNames     []string          `json:"ssh_key_names"`
	FileSystemNames []string          `json:"file_system_names"`
	Hostname        string            `json:"hostname,omitempty"`
	Region          Region            `json:"region"`
	InstanceType    InstanceType      `json:"instance_type"`
	Actions         map[string]Action `json:"actions"`
	Tags            []Tag             `json:"tags,omitempty"`
}

type step struct {
	at    time.Time
	apply func(*record)
}

type record struct {
	inst  Instance
	steps []step
	gone  bool
}

// Server is the fake Lambda API.
type Server struct {
	*fakeapi.Harness
	srv  *httptest.Server
	opts Options

	mu       sync.Mutex
	insts    map[string]*record
	seq      int
	types    map[string]TypeOffer // GET /instance-types (offers.go)
	creates  int                  // launch calls applied (launch.go)
	userData string               // user_data of the latest launch
}

// New starts a fake on a loopback port. Close it when done.
func New(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{Harness: fakeapi.NewHarness(opts.Now), opts: opts, insts: map[string]*record{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /instances", s.handleList)
	mux.HandleFunc("GET /instance-types", s.handleTypes)
	mux.HandleFunc("GET /instances/{id}", s.handleGet)
	mux.HandleFunc("POST /instance-operations/terminate", s.handleTerminate)
	mux.HandleFunc("POST /instance-operations/launch", s.handleLaunch)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "global/not-found", "no route "+r.Method+" "+r.URL.Path)
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

// Add stores an instance as given and returns its id (a 32-hex id is
// generated when empty). Actions are derived from the status.
func (s *Server) Add(in Instance) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.ID == "" {
		s.seq++
		in.ID = fmt.Sprintf("%032x", 0xfa4e0000+s.seq)
	}
	if in.SSHKeyNames == nil {
		in.SSHKeyNames = []string{"fleet"}
	}
	if in.FileSystemNames == nil {
		in.FileSystemNames = []string{}
	}
	deriveActions(&in)
	s.insts[in.ID] = &record{inst: in}
	return in.ID
}

// Launch adds an instance that boots: booting, then active after BootDelay.
func (s *Server) Launch(in Instance) string {
	in.Status = "booting"
	ip := in.IP
	in.IP = nil
	id := s.Add(in)
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.insts[id]
	r.steps = []step{{at: now.Add(s.opts.BootDelay), apply: func(r *record) {
		r.inst.Status = "active"
		r.inst.IP = ip
	}}}
	s.settle(r, now)
	return id
}

// Instance returns the current record of id; ok is false once it is gone.
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.get(id)
	if r == nil {
		return Instance{}, false
	}
	return r.inst, true
}

// Update changes a stored instance; pending transitions are dropped.
func (s *Server) Update(id string, fn func(*Instance)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.get(id)
	if r == nil {
		return fmt.Errorf("lambdafake: no instance %s", id)
	}
	r.steps = nil
	fn(&r.inst)
	deriveActions(&r.inst)
	return nil
}

// Preempt marks an instance preempted (API 1.10.0 status).
func (s *Server) Preempt(id string) error {
	return s.Update(id, func(i *Instance) { i.Status = "preempted" })
}

// get settles and returns a live record (caller holds s.mu).
func (s *Server) get(id string) *record {
	r, ok := s.insts[id]
	if !ok {
		return nil
	}
	s.settle(r, s.opts.Now())
	if r.gone {
		delete(s.insts, id)
		return nil
	}
	return r
}

func (s *Server) settle(r *record, now time.Time) {
	for len(r.steps) > 0 && !now.Before(r.steps[0].at) {
		r.steps[0].apply(r)
		r.steps = r.steps[1:]
		deriveActions(&r.inst)
	}
}

func deriveActions(i *Instance) {
	live := i.Status == "active" || i.Status == "unhealthy"
	term := i.Status != "terminating" && i.Status != "terminated"
	i.Actions = map[string]Action{
		"migrate":     {Available: false},
		"rebuild":     {Available: false},
		"restart":     {Available: live},
		"cold_reboot": {Available: false},
		"terminate":   {Available: term},
	}
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := fakeapi.BearerOrQueryKey(r, s.opts.APIKey, false)
		if a := r.Header.Get("Authorization"); !ok && strings.HasPrefix(a, "Basic ") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "Basic "))
			ok = err == nil && string(b) == s.opts.APIKey+":"
		}
		if !ok {
			render(w, r, Fault{Kind: AuthError})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	body := map[string]any{"code": code, "message": msg}
	if code == "global/invalid-api-key" {
		body["suggestion"] = "Check your API key or create a new one, then try again."
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func render(w http.ResponseWriter, r *http.Request, f Fault) {
	switch f.Kind {
	case RateLimit:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
		}
		apiError(w, http.StatusTooManyRequests, "global/too-many-requests", "Too many requests")
	case ServerError:
		st := f.Status
		if st == 0 {
			st = http.StatusInternalServerError
		}
		apiError(w, st, "global/unknown", "An unknown error occurred")
	case Malformed:
		body := f.Body
		if body == "" {
			body = `{"data": [{"id": "0920582c7ff041399e34823a0be62549", "status": ["active"`
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, body)
	case AuthError:
		apiError(w, http.StatusUnauthorized, "global/invalid-api-key", "API key was invalid, expired, or deleted.")
	default:
		apiError(w, http.StatusInternalServerError, "global/unknown", "unknown fault "+string(f.Kind))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.insts))
	for id := range s.insts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := []Instance{}
	for _, id := range ids {
		if rec := s.get(id); rec != nil {
			out = append(out, rec.inst)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	in, ok := s.Instance(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusNotFound, "global/object-does-not-exist", "Specified instance does not exist.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": in})
}

func (s *Server) handleTerminate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		InstanceIDs []string `json:"instance_ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.InstanceIDs) == 0 {
		apiError(w, http.StatusBadRequest, "global/invalid-parameters", "instance_ids must be a non-empty list of ids")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range body.InstanceIDs {
		if s.get(id) == nil {
			apiError(w, http.StatusNotFound, "global/object-does-not-exist", "Specified instance "+id+" does not exist.")
			return
		}
	}
	now := s.opts.Now()
	out := []Instance{}
	for _, id := range body.InstanceIDs {
		rec := s.insts[id]
		if rec.inst.Status != "terminating" {
			rec.inst.Status = "terminating"
			deriveActions(&rec.inst)
			rec.steps = []step{{at: now.Add(s.opts.TerminateDelay), apply: func(r *record) {
				r.inst.Status = "terminated"
				r.gone = true
			}}}
		}
		out = append(out, rec.inst)
		s.settle(rec, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"terminated_instances": out}})
}

// SeedInstance returns a typical active GH200 instance (the documented example).
func SeedInstance(id, name, ip string) Instance {
	priv := "10.0.2.100"
	return Instance{
		ID: id, Name: name, IP: &ip, PrivateIP: &priv, Status: "active",
		Hostname: strings.ReplaceAll(ip, ".", "-"),
		Region:   Region{Name: "us-east-3", Description: "Washington DC, USA"},
		InstanceType: InstanceType{Name: "gpu_1x_gh200", Description: "1x GH200 (96 GB)", GPUDescription: "GH200 (96 GB)",
			PriceCentsPerHour: 149, Specs: Specs{VCPUs: 64, MemoryGiB: 432, StorageGiB: 4096, GPUs: 1}},
	}
}
