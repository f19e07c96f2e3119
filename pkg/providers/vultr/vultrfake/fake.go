// Package vultrfake is a stateful, in-process fake of the parts of the Vultr
// API v2 that ringmesh uses, for tests and the demo mode.
//
// Endpoints (shapes from the Vultr OpenAPI and govultr v3, docs/provider-apis.md §4):
//
//	GET    /v2/instances[?per_page=&cursor=&label=&tag=&region=&main_ip=]
//	                                 -> 200 {"instances":[…],"meta":{"total":n,"links":{"next":"…","prev":"…"}}}
//	GET    /v2/instances/{id}        -> 200 {"instance":{…}} | 404 {"error":"Invalid instance-id.","status":404}
//	POST   /v2/instances/{id}/start  -> 204 (power on; a running instance is rebooted, as on Vultr)
//	POST   /v2/instances/{id}/halt   -> 204 (power off after HaltDelay)
//	POST   /v2/instances/{id}/reboot -> 204
//	DELETE /v2/instances/{id}        -> 204 | 404
//	GET    /v2/plans[?type=&per_page=&cursor=] -> 200 {"plans":[…],"meta":{…}}
//
// Every response is "Content-Type: application/json" exactly (govultr only
// decodes that value). Requests need "Authorization: Bearer <Options.Token>"
// when a token is set (else 401).
//
// States move with time, evaluated lazily on each request against Options.Now:
// a seeded instance without a status starts "pending", becomes
// active/running/installingbooting after BootDelay and active/running/ok after
// another BootDelay; halt sets power_status "stopped" after HaltDelay; start sets
// running/installingbooting at once and "ok" after StartDelay; delete removes
// the instance immediately.
//
// Faults (Inject) answer matching requests with 429, 500, a hang, a malformed
// body or 401, for Count requests. Every request is recorded (Calls) so tests
// can assert that no mutating call was sent twice.
package vultrfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
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

// Instance is the wire shape of a Vultr instance (fields as in the API; ram in
// MB, disk in GB, date_created ISO 8601).
type Instance struct {
	ID               string   `json:"id"`
	OS               string   `json:"os"`
	RAM              int      `json:"ram"`
	Disk             int      `json:"disk"`
	Plan             string   `json:"plan"`
	MainIP           string   `json:"main_ip"`
	VCPUCount        int      `json:"vcpu_count"`
	Region           string   `json:"region"`
	DateCreated      string   `json:"date_created"`
	Status           string   `json:"status"`
	AllowedBandwidth int      `json:"allowed_bandwidth"`
	NetmaskV4        string   `json:"netmask_v4"`
	GatewayV4        string   `json:"gateway_v4"`
	PowerStatus      string   `json:"power_status"`
	ServerStatus     string   `json:"server_status"`
	V6Network        string   `json:"v6_network"`
	V6MainIP         string   `json:"v6_main_ip"`
	V6NetworkSize    int      `json:"v6_network_size"`
	Label            string   `json:"label"`
	InternalIP       string   `json:"internal_ip"`
	KVM              string   `json:"kvm"`
	OSID             int      `json:"os_id"`
	AppID            int      `json:"app_id"`
	ImageID          string   `json:"image_id"`
	SnapshotID       string   `json:"snapshot_id"`
	FirewallGroupID  string   `json:"firewall_group_id"`
	Features         []string `json:"features"`
	Hostname         string   `json:"hostname"`
	Tags             []string `json:"tags"`
	UserScheme       string   `json:"user_scheme"`
	VPCOnly          bool     `json:"vpc_only"`
}

// Plan is the wire shape of a plan. HourlyCost and GPUCount are sent by the
// live API (not decoded by govultr); set them to nil/0 to omit them.
type Plan struct {
	ID          string   `json:"id"`
	VCPUCount   int      `json:"vcpu_count"`
	RAM         int      `json:"ram"` // MB
	Disk        int      `json:"disk"`
	DiskCount   int      `json:"disk_count"`
	Bandwidth   int      `json:"bandwidth"`
	MonthlyCost float64  `json:"monthly_cost"` // USD/month
	HourlyCost  *float64 `json:"hourly_cost,omitempty"`
	Type        string   `json:"type"`
	GPUVRAMGB   int      `json:"gpu_vram_gb,omitempty"`
	GPUType     string   `json:"gpu_type,omitempty"`
	GPUCount    int      `json:"gpu_count,omitempty"`
	Locations   []string `json:"locations"`
}

// DefaultPlans is a small catalogue with prices from docs/provider-apis.md §8
// (fake values in the documented shape). vc2-1c-1gb has no hourly_cost so the
// monthly fallback is exercised.
func DefaultPlans() []Plan {
	h := func(v float64) *float64 { return &v }
	return []Plan{
		{ID: "vc2-1c-1gb", VCPUCount: 1, RAM: 1024, Disk: 25, DiskCount: 1, Bandwidth: 1024, MonthlyCost: 5, Type: "vc2", Locations: []string{"ewr", "ams"}},
		{ID: "vcg-a100-1c-6g-4vram", VCPUCount: 1, RAM: 6144, Disk: 70, DiskCount: 1, Bandwidth: 1024, MonthlyCost: 90, HourlyCost: h(0.123), Type: "vcg", GPUVRAMGB: 4, GPUType: "NVIDIA_A100", Locations: []string{"ewr"}},
		{ID: "vcg-a100-3c-30g-20vram", VCPUCount: 3, RAM: 30720, Disk: 140, DiskCount: 1, Bandwidth: 3072, MonthlyCost: 450, HourlyCost: h(0.616), Type: "vcg", GPUVRAMGB: 20, GPUType: "NVIDIA_A100", Locations: []string{"ewr"}},
		{ID: "vcg-a40-24c-120g-48vram", VCPUCount: 24, RAM: 122880, Disk: 1400, DiskCount: 1, Bandwidth: 10240, MonthlyCost: 1250, HourlyCost: h(1.712), Type: "vcg", GPUVRAMGB: 48, GPUType: "NVIDIA_A40", GPUCount: 1, Locations: []string{"ewr"}},
		{ID: "vcg-l40s-16c-180g-48vram", VCPUCount: 16, RAM: 184320, Disk: 1200, DiskCount: 1, Bandwidth: 10240, MonthlyCost: 1220, HourlyCost: h(1.671), Type: "vcg", GPUVRAMGB: 48, GPUType: "NVIDIA_L40S", GPUCount: 1, Locations: []string{"ewr"}},
	}
}

// Fault injection and the call log come from the harness all HTTP cloud
// fakes share (pkg/providers/internal/fakeapi); only the rendering of a fault
// in Vultr's format is this package's.
type (
	Fault     = fakeapi.Fault
	FaultKind = fakeapi.FaultKind
	Call      = fakeapi.Call
)

// Fault kinds, as Vultr answers them:
//
//	RateLimit    429 {"error":"Rate limit reached…","status":429}, Retry-After (Fault.RetryAfter, default 1 s)
//	ServerError  Fault.Status (default 500) {"error":"Internal server error","status":…}
//	Timeout      no answer until the client gives up (or Fault.Delay passes, then 504)
//	Malformed    200 application/json with a truncated, invalid body (or Fault.Body)
//	AuthError    401 {"error":"Invalid API token.","status":401}
const (
	RateLimit   = fakeapi.RateLimit
	ServerError = fakeapi.ServerError
	Timeout     = fakeapi.Timeout
	Malformed   = fakeapi.Malformed
	AuthError   = fakeapi.AuthError
)

// Options configures a Server. Zero values get defaults.
type Options struct {
	// Token is the API key the fake expects ("" = accept any Authorization).
	Token string
	// BootDelay: pending -> active/running/installingbooting -> ok, each step. Default 20 ms.
	BootDelay time.Duration
	// HaltDelay: time until power_status becomes "stopped" after halt. Default 20 ms.
	HaltDelay time.Duration
	// StartDelay: time until server_status becomes "ok" after start. Default 20 ms.
	StartDelay time.Duration
	// Plans is the plan catalogue. Default DefaultPlans().
	Plans []Plan
	// Now is the fake's clock. Default time.Now.
	Now func() time.Time
}

type transition struct {
	at                   time.Time
	power, server, state string // "" = unchanged
}

type instance struct {
	Instance
	seq  int
	next []transition
}

// Server is a running fake. Create it with New and Close it when done.
type Server struct {
	*fakeapi.Harness
	srv  *httptest.Server
	opts Options

	mu        sync.Mutex
	instances map[string]*instance
	seq       int
	creates   int // create calls applied (launch.go)
}

// New starts a fake Vultr API on a local port.
func New(opts Options) *Server {
	if opts.BootDelay <= 0 {
		opts.BootDelay = 20 * time.Millisecond
	}
	if opts.HaltDelay <= 0 {
		opts.HaltDelay = 20 * time.Millisecond
	}
	if opts.StartDelay <= 0 {
		opts.StartDelay = 20 * time.Millisecond
	}
	if opts.Plans == nil {
		opts.Plans = DefaultPlans()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{Harness: fakeapi.NewHarness(opts.Now), opts: opts, instances: map[string]*instance{}}
	s.srv = httptest.NewServer(s.Wrap(writeFault, http.HandlerFunc(s.serve)))
	return s
}

// URL is the base URL to hand to vultr.Options.BaseURL (govultr adds "/v2/…").
func (s *Server) URL() string { return s.srv.URL }

// Close releases requests held by Timeout faults and shuts the server down.
func (s *Server) Close() {
	s.Shutdown()
	s.srv.Close()
}

// Seed adds instances. Missing fields get defaults: a random UUID id, region
// "ewr", plan "vcg-a100-1c-6g-4vram", date_created now, a 192.0.2.x main_ip,
// and status "pending" that boots over time. Instances with a status keep it
// (power_status "running" and server_status "ok" default for "active").
// Seed returns the instances as stored.
func (s *Server) Seed(insts ...Instance) []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	out := make([]Instance, 0, len(insts))
	for _, in := range insts {
		s.seq++
		if in.ID == "" {
			in.ID = newUUID()
		}
		if in.Region == "" {
			in.Region = "ewr"
		}
		if in.Plan == "" {
			in.Plan = "vcg-a100-1c-6g-4vram"
		}
		if in.DateCreated == "" {
			in.DateCreated = now.UTC().Format("2006-01-02T15:04:05+00:00")
		}
		if in.MainIP == "" {
			in.MainIP = fmt.Sprintf("192.0.2.%d", s.seq%250+1)
		}
		if in.Features == nil {
			in.Features = []string{}
		}
		if in.Tags == nil {
			in.Tags = []string{}
		}
		if p, ok := s.plan(in.Plan); ok {
			if in.RAM == 0 {
				in.RAM = p.RAM
			}
			if in.VCPUCount == 0 {
				in.VCPUCount = p.VCPUCount
			}
			if in.Disk == 0 {
				in.Disk = p.Disk
			}
		}
		st := &instance{Instance: in, seq: s.seq}
		switch in.Status {
		case "":
			st.Status, st.PowerStatus, st.ServerStatus = "pending", "running", "none"
			st.next = []transition{
				{at: now.Add(s.opts.BootDelay), state: "active", power: "running", server: "installingbooting"},
				{at: now.Add(2 * s.opts.BootDelay), server: "ok"},
			}
		case "active":
			if st.PowerStatus == "" {
				st.PowerStatus = "running"
			}
			if st.ServerStatus == "" {
				st.ServerStatus = "ok"
			}
		}
		s.instances[in.ID] = st
		out = append(out, st.Instance)
	}
	return out
}

// SetStatus overwrites an instance's three status words (for odd-state tests)
// and cancels its pending transitions. It reports whether the instance exists.
func (s *Server) SetStatus(id, status, power, server string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if ok {
		in.Status, in.PowerStatus, in.ServerStatus, in.next = status, power, server, nil
	}
	return ok
}

// Instance returns the current state of one instance (transitions applied).
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.Instance, true
}

// SetPlans replaces the plan catalogue.
func (s *Server) SetPlans(plans []Plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Plans = append([]Plan(nil), plans...)
}

func (s *Server) plan(id string) (Plan, bool) {
	for _, p := range s.opts.Plans {
		if p.ID == id {
			return p, true
		}
	}
	return Plan{}, false
}

// advance applies due transitions. Caller holds s.mu.
func (s *Server) advance() {
	now := s.opts.Now()
	for _, in := range s.instances {
		for len(in.next) > 0 && !in.next[0].at.After(now) {
			t := in.next[0]
			in.next = in.next[1:]
			if t.state != "" {
				in.Status = t.state
			}
			if t.power != "" {
				in.PowerStatus = t.power
			}
			if t.server != "" {
				in.ServerStatus = t.server
			}
		}
	}
}

// serve authenticates and routes a request the harness let through.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
		writeError(w, http.StatusUnauthorized, "Invalid API token.")
		return
	}
	s.route(w, r)
}

// writeFault renders a fault the way Vultr answers (the harness handles Timeout).
func writeFault(w http.ResponseWriter, r *http.Request, f Fault) {
	switch f.Kind {
	case RateLimit:
		ra := int(f.RetryAfter.Round(time.Second) / time.Second)
		if ra <= 0 {
			ra = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		writeError(w, http.StatusTooManyRequests, "Rate limit reached - please try your request again later.")
	case ServerError:
		st := f.Status
		if st == 0 {
			st = http.StatusInternalServerError
		}
		writeError(w, st, "Internal server error")
	case Malformed:
		body := f.Body
		if body == "" {
			body = `{"instances":[{"id":"`
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
	case AuthError:
		writeError(w, http.StatusUnauthorized, "Invalid API token.")
	default:
		writeError(w, http.StatusInternalServerError, "unknown fault "+string(f.Kind))
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "v2" && parts[1] == "instances" && r.Method == http.MethodGet:
		s.listInstances(w, r)
	case len(parts) == 2 && parts[0] == "v2" && parts[1] == "instances" && r.Method == http.MethodPost:
		s.createInstance(w, r)
	case len(parts) == 2 && parts[0] == "v2" && parts[1] == "plans" && r.Method == http.MethodGet:
		s.listPlans(w, r)
	case len(parts) == 3 && parts[0] == "v2" && parts[1] == "instances":
		switch r.Method {
		case http.MethodGet:
			s.getInstance(w, parts[2])
		case http.MethodDelete:
			s.deleteInstance(w, parts[2])
		default:
			writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		}
	case len(parts) == 4 && parts[0] == "v2" && parts[1] == "instances" && r.Method == http.MethodPost:
		s.action(w, parts[2], parts[3])
	default:
		writeError(w, http.StatusNotFound, "Not found")
	}
}

func (s *Server) sorted() []*instance {
	out := make([]*instance, 0, len(s.instances))
	for _, in := range s.instances {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

type meta struct {
	Total int   `json:"total"`
	Links links `json:"links"`
}

type links struct {
	Next string `json:"next"`
	Prev string `json:"prev"`
}

// page cuts [offset, offset+perPage) and builds meta.links cursors. Cursors
// are opaque base64 strings like Vultr's ("next__<offset>").
func page(total int, r *http.Request) (from, to int, m meta, err error) {
	perPage := 100
	if v := r.URL.Query().Get("per_page"); v != "" {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 1 || n > 500 {
			//lint:ignore ST1005 Vultr's API error text, verbatim (it becomes the response's error field)
			return 0, 0, m, errors.New("Invalid per_page value.")
		}
		perPage = n
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		raw, decErr := base64.StdEncoding.DecodeString(c)
		if decErr != nil {
			//lint:ignore ST1005 Vultr's API error text, verbatim (it becomes the response's error field)
			return 0, 0, m, errors.New("Invalid cursor.")
		}
		var n int
		if _, scanErr := fmt.Sscanf(string(raw), "next__%d", &n); scanErr != nil {
			if _, scanErr = fmt.Sscanf(string(raw), "prev__%d", &n); scanErr != nil || n < 0 {
				//lint:ignore ST1005 Vultr's API error text, verbatim (it becomes the response's error field)
				return 0, 0, m, errors.New("Invalid cursor.")
			}
		}
		from = n
	}
	if from > total {
		from = total
	}
	to = from + perPage
	if to > total {
		to = total
	}
	m.Total = total
	if to < total {
		m.Links.Next = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("next__%d", to)))
	}
	if from > 0 {
		prev := from - perPage
		if prev < 0 {
			prev = 0
		}
		m.Links.Prev = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("prev__%d", prev)))
	}
	return from, to, m, nil
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.advance()
	var sel []Instance
	for _, in := range s.sorted() {
		if v := q.Get("label"); v != "" && in.Label != v {
			continue
		}
		if v := q.Get("region"); v != "" && in.Region != v {
			continue
		}
		if v := q.Get("main_ip"); v != "" && in.MainIP != v {
			continue
		}
		if v := q.Get("tag"); v != "" && !contains(in.Tags, v) {
			continue
		}
		sel = append(sel, in.Instance)
	}
	s.mu.Unlock()
	from, to, m, err := page(len(sel), r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	items := sel[from:to]
	if items == nil {
		items = []Instance{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"instances": items, "meta": m})
}

func (s *Server) listPlans(w http.ResponseWriter, r *http.Request) {
	typ := r.URL.Query().Get("type")
	s.mu.Lock()
	var sel []Plan
	for _, p := range s.opts.Plans {
		if typ == "" || typ == "all" || p.Type == typ {
			sel = append(sel, p)
		}
	}
	s.mu.Unlock()
	from, to, m, err := page(len(sel), r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	items := sel[from:to]
	if items == nil {
		items = []Plan{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"plans": items, "meta": m})
}

func (s *Server) getInstance(w http.ResponseWriter, id string) {
	s.mu.Lock()
	s.advance()
	in, ok := s.instances[id]
	var cp Instance
	if ok {
		cp = in.Instance
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Invalid instance-id.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"instance": cp})
}

func (s *Server) deleteInstance(w http.ResponseWriter, id string) {
	s.mu.Lock()
	_, ok := s.instances[id]
	delete(s.instances, id)
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Invalid instance-id.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) action(w http.ResponseWriter, id, verb string) {
	s.mu.Lock()
	s.advance()
	in, ok := s.instances[id]
	now := s.opts.Now()
	if ok {
		switch verb {
		case "halt":
			in.next = []transition{{at: now.Add(s.opts.HaltDelay), power: "stopped"}}
		case "start", "reboot":
			in.PowerStatus, in.ServerStatus = "running", "installingbooting"
			if in.Status == "pending" {
				in.Status = "active"
			}
			in.next = []transition{{at: now.Add(s.opts.StartDelay), server: "ok"}}
		default:
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, "Not found")
			return
		}
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Invalid instance-id.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError sends Vultr's error shape {"error":"…","status":N}.
func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]any{"error": msg, "status": status})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
