// Package hetznerfake is a stateful, in-process fake of the parts of the
// Hetzner Cloud API (https://api.hetzner.cloud/v1) that ringmesh uses, for
// tests and the demo mode. Wire shapes are hcloud-go's hcloud/schema structs
// (docs/provider-apis.md §5).
//
//	GET    /v1/servers[?page=&per_page=&name=&status=]  -> {"servers":[…],"meta":{"pagination":{…}}}
//	GET    /v1/servers/{id}                             -> {"server":{…}} | 404 not_found
//	POST   /v1/servers/{id}/actions/poweron             -> 201 {"action":{… "command":"start_server"}}
//	POST   /v1/servers/{id}/actions/shutdown            -> 201 {"action":{… "command":"shutdown_server"}} (ACPI)
//	POST   /v1/servers/{id}/actions/poweroff            -> 201 {"action":{… "command":"stop_server"}}
//	DELETE /v1/servers/{id}                             -> 200 {"action":{… "command":"delete_server"}}
//	GET    /v1/actions/{id}                             -> {"action":{…}}
//	GET    /v1/actions?id=1&id=2[&page=&per_page=]      -> {"actions":[…],"meta":{"pagination":{…}}}
//
// Errors use Hetzner's shape {"error":{"code":"not_found","message":"…","details":{}}}.
// A server with a running action answers further actions with 423 "locked".
// Actions run for ActionDelay and then succeed; their effect on the server
// lands when they finish (poweron: starting -> running; poweroff: stopping ->
// off; shutdown: the ACPI signal is sent, and the guest powers off after
// ShutdownDelay unless the server ignores ACPI; delete: deleting -> gone).
// All time is evaluated lazily against Options.Now.
package hetznerfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"

	"github.com/ringmesh/ringmesh/pkg/providers/internal/fakeapi"
)

// SeedServer describes a server to add. Zero fields get defaults.
type SeedServer struct {
	ID         int64             // default: next free ID
	Name       string            // default "server-<id>"
	Status     string            // default "running"; one of the 9 documented statuses
	ServerType string            // default "cx22" (see ServerTypes)
	Location   string            // default "fsn1"
	IPv4       string            // default 203.0.113.<n>; "none" = no public IPv4 (null in JSON)
	IPv6       string            // default "2001:db8::/64" (the server's /64); "none" = no public IPv6 (null in JSON)
	Labels     map[string]string // default empty
	Created    time.Time         // default now
	// IgnoreACPI makes the guest ignore ACPI shutdown, so only poweroff stops it.
	IgnoreACPI bool
	// ProtectDelete sets protection.delete: DELETE answers 403 "protected".
	ProtectDelete bool
}

// ServerTypes is the fake's catalogue (shape of /v1/server_types; fake prices,
// EUR, strings as in the API). Memory in GB, disk in GB.
func ServerTypes() []schema.ServerType {
	mk := func(id int64, name string, cores int, mem float32, disk int, cpuType string, hourlyNet, hourlyGross, monthlyNet, monthlyGross string) schema.ServerType {
		var prices []schema.PricingServerTypePrice
		for _, loc := range []string{"fsn1", "nbg1", "hel1"} {
			prices = append(prices, schema.PricingServerTypePrice{
				Location:          loc,
				PriceHourly:       schema.Price{Net: hourlyNet, Gross: hourlyGross},
				PriceMonthly:      schema.Price{Net: monthlyNet, Gross: monthlyGross},
				IncludedTraffic:   21990232555520,
				PricePerTBTraffic: schema.Price{Net: "1.0000000000", Gross: "1.1900000000000000"},
			})
		}
		return schema.ServerType{ID: id, Name: name, Description: strings.ToUpper(name), Category: "regular_purpose",
			Cores: cores, Memory: mem, Disk: disk, StorageType: "local", CPUType: cpuType, Architecture: "x86", Prices: prices}
	}
	return []schema.ServerType{
		mk(104, "cx22", 2, 4, 40, "shared", "0.0060000000", "0.0071400000000000", "3.7900000000", "4.5101000000000000"),
		mk(105, "cx32", 4, 8, 80, "shared", "0.0110000000", "0.0130900000000000", "6.8000000000", "8.0920000000000000"),
		mk(98, "ccx33", 8, 32, 240, "dedicated", "0.0750000000", "0.0892500000000000", "46.4100000000", "55.2279000000000000"),
	}
}

// Locations is the fake's location catalogue.
func Locations() []schema.Location {
	return []schema.Location{
		{ID: 1, Name: "fsn1", Description: "Falkenstein DC Park 1", Country: "DE", City: "Falkenstein", Latitude: 50.47612, Longitude: 12.370071, NetworkZone: "eu-central"},
		{ID: 2, Name: "nbg1", Description: "Nuremberg DC Park 1", Country: "DE", City: "Nuremberg", Latitude: 49.452102, Longitude: 11.076665, NetworkZone: "eu-central"},
		{ID: 3, Name: "hel1", Description: "Helsinki DC Park 1", Country: "FI", City: "Helsinki", Latitude: 60.169855, Longitude: 24.938379, NetworkZone: "eu-central"},
	}
}

// Fault injection and the call log come from the harness all HTTP cloud
// fakes share (pkg/providers/internal/fakeapi); only the rendering of a fault
// in Hetzner's format is this package's.
type (
	Fault     = fakeapi.Fault
	FaultKind = fakeapi.FaultKind
	Call      = fakeapi.Call
)

// Fault kinds, as Hetzner answers them:
//
//	RateLimit    429 rate_limit_exceeded, RateLimit-Remaining: 0
//	ServerError  Fault.Status (default 500) server_error
//	Timeout      no answer until the client gives up (or Fault.Delay passes, then 504)
//	Malformed    200 application/json with an invalid body (or Fault.Body)
//	AuthError    401 unauthorized
const (
	RateLimit   = fakeapi.RateLimit
	ServerError = fakeapi.ServerError
	Timeout     = fakeapi.Timeout
	Malformed   = fakeapi.Malformed
	AuthError   = fakeapi.AuthError
)

// Options configures a Server.
type Options struct {
	// Token the fake expects as Bearer ("" = accept any).
	Token string
	// ActionDelay is how long an action stays "running". Default 20 ms.
	ActionDelay time.Duration
	// ShutdownDelay is how long a guest takes to power off after ACPI shutdown
	// (counted from the action's end). Default 20 ms.
	ShutdownDelay time.Duration
	// Now is the fake's clock. Default time.Now.
	Now func() time.Time
}

type server struct {
	schema.Server
	ignoreACPI bool
	busyUntil  time.Time // a running action holds the server ("locked")
	next       []transition
}

type transition struct {
	at     time.Time
	status string
	remove bool
}

type action struct {
	schema.Action
	doneAt time.Time
}

// Server is a running fake.
type Server struct {
	*fakeapi.Harness
	srv  *httptest.Server
	opts Options

	mu      sync.Mutex
	servers map[int64]*server
	actions map[int64]*action
	nextID  int64
	nextAct int64
	creates int // create calls applied (launch.go)
}

// New starts a fake Hetzner Cloud API on a local port.
func New(opts Options) *Server {
	if opts.ActionDelay <= 0 {
		opts.ActionDelay = 20 * time.Millisecond
	}
	if opts.ShutdownDelay <= 0 {
		opts.ShutdownDelay = 20 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{Harness: fakeapi.NewHarness(opts.Now), opts: opts, servers: map[int64]*server{}, actions: map[int64]*action{}, nextID: 42, nextAct: 1000}
	h := s.Wrap(writeFault, http.HandlerFunc(s.serve))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hetzner sends its rate-limit headers on every answer, faults included.
		w.Header().Set("RateLimit-Limit", "3600")
		w.Header().Set("RateLimit-Remaining", "3599")
		w.Header().Set("RateLimit-Reset", strconv.FormatInt(s.opts.Now().Add(time.Second).Unix(), 10))
		h.ServeHTTP(w, r)
	}))
	return s
}

// URL is the API endpoint to hand to hetzner.Options.Endpoint (hcloud.WithEndpoint): "<base>/v1".
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Close releases requests held by Timeout faults and shuts the server down.
func (s *Server) Close() {
	s.Shutdown()
	s.srv.Close()
}

// Seed adds servers and returns their IDs.
func (s *Server) Seed(seeds ...SeedServer) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	ids := make([]int64, 0, len(seeds))
	for _, sd := range seeds {
		if sd.ID == 0 {
			sd.ID = s.nextID
		}
		if sd.ID >= s.nextID {
			s.nextID = sd.ID + 1
		}
		if sd.Name == "" {
			sd.Name = fmt.Sprintf("server-%d", sd.ID)
		}
		if sd.Status == "" {
			sd.Status = "running"
		}
		if sd.ServerType == "" {
			sd.ServerType = "cx22"
		}
		if sd.Location == "" {
			sd.Location = "fsn1"
		}
		if sd.Created.IsZero() {
			sd.Created = now
		}
		if sd.Labels == nil {
			sd.Labels = map[string]string{}
		}
		st, _ := findType(sd.ServerType)
		loc, _ := findLocation(sd.Location)
		srv := schema.Server{
			ID: sd.ID, Name: sd.Name, Status: sd.Status, Created: sd.Created.UTC().Truncate(time.Second),
			ServerType: st, Location: loc, Labels: sd.Labels,
			PrivateNet: []schema.ServerPrivateNet{}, Volumes: []int64{}, LoadBalancers: []int64{},
			PrimaryDiskSize: st.Disk, IncludedTraffic: 21990232555520,
			Protection: schema.ServerProtection{Delete: sd.ProtectDelete, Rebuild: sd.ProtectDelete},
		}
		srv.PublicNet.FloatingIPs = []int64{}
		srv.PublicNet.Firewalls = []schema.ServerFirewall{}
		if sd.IPv4 != "none" {
			ip := sd.IPv4
			if ip == "" {
				ip = fmt.Sprintf("203.0.113.%d", sd.ID%250+1)
			}
			srv.PublicNet.IPv4 = schema.ServerPublicNetIPv4{ID: sd.ID + 100000, IP: ip, DNSPtr: "static.example.invalid"}
		}
		if sd.IPv6 != "none" {
			net6 := sd.IPv6
			if net6 == "" {
				net6 = "2001:db8::/64"
			}
			srv.PublicNet.IPv6 = schema.ServerPublicNetIPv6{ID: sd.ID + 200000, IP: net6, DNSPtr: []schema.ServerPublicNetIPv6DNSPtr{}}
		}
		s.servers[sd.ID] = &server{Server: srv, ignoreACPI: sd.IgnoreACPI}
		ids = append(ids, sd.ID)
	}
	return ids
}

// Status returns a server's current status ("" and false when it is gone).
func (s *Server) Status(id int64) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	sv, ok := s.servers[id]
	if !ok {
		return "", false
	}
	return sv.Status, true
}

// SetStatus overwrites a server's status (odd-state tests) and cancels its
// pending transitions. It reports whether the server exists.
func (s *Server) SetStatus(id int64, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, ok := s.servers[id]
	if ok {
		sv.Status, sv.next = status, nil
	}
	return ok
}

func findType(name string) (schema.ServerType, bool) {
	for _, t := range ServerTypes() {
		if t.Name == name {
			return t, true
		}
	}
	return schema.ServerType{ID: 1, Name: name, Prices: []schema.PricingServerTypePrice{}}, false
}

func findLocation(name string) (schema.Location, bool) {
	for _, l := range Locations() {
		if l.Name == name {
			return l, true
		}
	}
	return schema.Location{ID: 99, Name: name}, false
}

// advance applies due transitions and finishes due actions. Caller holds s.mu.
func (s *Server) advance() {
	now := s.opts.Now()
	for id, sv := range s.servers {
		for len(sv.next) > 0 && !sv.next[0].at.After(now) {
			t := sv.next[0]
			sv.next = sv.next[1:]
			if t.remove {
				delete(s.servers, id)
				break
			}
			sv.Status = t.status
		}
	}
	for _, a := range s.actions {
		if a.Status == "running" && !a.doneAt.After(now) {
			done := a.doneAt.UTC()
			a.Status, a.Progress, a.Finished = "success", 100, &done
		} else if a.Status == "running" {
			total := a.doneAt.Sub(a.Started)
			if total > 0 {
				a.Progress = int(100 * now.Sub(a.Started) / total)
			}
		}
	}
}

// serve authenticates and routes a request the harness let through.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
		writeError(w, http.StatusUnauthorized, "unauthorized", "unable to authenticate")
		return
	}
	s.route(w, r)
}

// writeFault renders a fault the way Hetzner answers (the harness handles Timeout).
func writeFault(w http.ResponseWriter, r *http.Request, f Fault) {
	switch f.Kind {
	case RateLimit:
		w.Header().Set("RateLimit-Remaining", "0")
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(f.RetryAfter.Round(time.Second)/time.Second)))
		}
		writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "limit of 3600 requests per hour reached")
	case ServerError:
		st := f.Status
		if st == 0 {
			st = http.StatusInternalServerError
		}
		writeError(w, st, "server_error", "internal server error")
	case Malformed:
		body := f.Body
		if body == "" {
			body = `{"servers":[{"id":`
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
	case AuthError:
		writeError(w, http.StatusUnauthorized, "unauthorized", "unable to authenticate")
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "unknown fault "+string(f.Kind))
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) < 2 || parts[0] != "v1" {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	parts = parts[1:]
	switch {
	case len(parts) == 1 && parts[0] == "servers" && r.Method == http.MethodGet:
		s.listServers(w, r)
	case len(parts) == 1 && parts[0] == "servers" && r.Method == http.MethodPost:
		s.createServer(w, r)
	case len(parts) == 2 && parts[0] == "servers":
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_input", "invalid server id")
			return
		}
		switch r.Method {
		case http.MethodGet:
			s.getServer(w, id)
		case http.MethodDelete:
			s.serverAction(w, id, "delete")
		default:
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
		}
	case len(parts) == 4 && parts[0] == "servers" && parts[2] == "actions" && r.Method == http.MethodPost:
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_input", "invalid server id")
			return
		}
		s.serverAction(w, id, parts[3])
	case len(parts) == 1 && parts[0] == "server_types" && r.Method == http.MethodGet:
		s.listServerTypes(w, r)
	case len(parts) == 1 && parts[0] == "actions" && r.Method == http.MethodGet:
		s.listActions(w, r)
	case len(parts) == 2 && parts[0] == "actions" && r.Method == http.MethodGet:
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_input", "invalid action id")
			return
		}
		s.getAction(w, id)
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

// paginate cuts a page (page starts at 1, per_page default 25, max 50).
func paginate(total int, r *http.Request) (from, to int, m schema.MetaPagination, err error) {
	q := r.URL.Query()
	pg, per := 1, 25
	if v := q.Get("page"); v != "" {
		if pg, err = strconv.Atoi(v); err != nil || pg < 1 {
			return 0, 0, m, fmt.Errorf("invalid page")
		}
	}
	if v := q.Get("per_page"); v != "" && v != "-1" {
		if per, err = strconv.Atoi(v); err != nil || per < 1 {
			return 0, 0, m, fmt.Errorf("invalid per_page")
		}
		if per > 50 {
			per = 50
		}
	}
	last := (total + per - 1) / per
	if last == 0 {
		last = 1
	}
	from = (pg - 1) * per
	if from > total {
		from = total
	}
	to = from + per
	if to > total {
		to = total
	}
	m = schema.MetaPagination{Page: pg, PerPage: per, LastPage: last, TotalEntries: total}
	if pg > 1 {
		m.PreviousPage = pg - 1
	}
	if pg < last {
		m.NextPage = pg + 1
	}
	return from, to, m, nil
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.advance()
	ids := make([]int64, 0, len(s.servers))
	for id := range s.servers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var sel []schema.Server
	for _, id := range ids {
		sv := s.servers[id]
		if v := q.Get("name"); v != "" && sv.Name != v {
			continue
		}
		if st := q["status"]; len(st) > 0 && !contains(st, sv.Status) {
			continue
		}
		sel = append(sel, sv.Server)
	}
	s.mu.Unlock()
	from, to, m, err := paginate(len(sel), r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_input", err.Error())
		return
	}
	items := make([]any, 0, to-from)
	for _, sv := range sel[from:to] {
		items = append(items, wireServer(sv))
	}
	writeJSON(w, http.StatusOK, map[string]any{"servers": items, "meta": schema.Meta{Pagination: &m}})
}

func (s *Server) getServer(w http.ResponseWriter, id int64) {
	s.mu.Lock()
	s.advance()
	sv, ok := s.servers[id]
	var cp schema.Server
	if ok {
		cp = sv.Server
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("server with ID '%d' not found", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": wireServer(cp)})
}

// wireServer renders a server as the API does: a server without a public
// IPv4 (or IPv6) has "public_net": {"ipv4": null, …}, not an empty object.
func wireServer(sv schema.Server) any {
	b, err := json.Marshal(sv)
	if err != nil {
		return sv
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return sv
	}
	if pn, ok := m["public_net"].(map[string]any); ok {
		if sv.PublicNet.IPv4.IP == "" {
			pn["ipv4"] = nil
		}
		if sv.PublicNet.IPv6.IP == "" {
			pn["ipv6"] = nil
		}
	}
	return m
}

var commands = map[string]string{
	"poweron":  "start_server",
	"shutdown": "shutdown_server",
	"poweroff": "stop_server",
	"reboot":   "reboot_server",
	"reset":    "reset_server",
	"delete":   "delete_server",
}

func (s *Server) serverAction(w http.ResponseWriter, id int64, verb string) {
	cmd, known := commands[verb]
	if !known {
		writeError(w, http.StatusNotFound, "not_found", "no such action")
		return
	}
	s.mu.Lock()
	s.advance()
	sv, ok := s.servers[id]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("server with ID '%d' not found", id))
		return
	}
	now := s.opts.Now()
	if verb == "delete" && sv.Protection.Delete {
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, "protected", "server is delete protected")
		return
	}
	if now.Before(sv.busyUntil) {
		s.mu.Unlock()
		writeError(w, http.StatusLocked, "locked", "server is locked by another action")
		return
	}
	done := now.Add(s.opts.ActionDelay)
	sv.busyUntil = done
	switch verb {
	case "poweron", "reboot", "reset":
		if sv.Status != "running" {
			sv.Status = "starting"
		}
		sv.next = []transition{{at: done, status: "running"}}
	case "poweroff":
		if sv.Status != "off" {
			sv.Status = "stopping"
		}
		sv.next = []transition{{at: done, status: "off"}}
	case "shutdown":
		if sv.Status == "running" && !sv.ignoreACPI {
			sv.next = []transition{
				{at: done, status: "stopping"},
				{at: done.Add(s.opts.ShutdownDelay), status: "off"},
			}
		}
	case "delete":
		sv.Status = "deleting"
		sv.next = []transition{{at: done, remove: true}}
	}
	s.nextAct++
	a := &action{Action: schema.Action{
		ID: s.nextAct, Command: cmd, Status: "running", Progress: 0, Started: now.UTC(),
		Resources: []schema.ActionResourceReference{{ID: id, Type: "server"}},
	}, doneAt: done}
	s.actions[a.ID] = a
	out := a.Action
	s.mu.Unlock()
	status := http.StatusCreated
	if verb == "delete" {
		status = http.StatusOK
	}
	writeJSON(w, status, schema.ActionGetResponse{Action: out})
}

func (s *Server) getAction(w http.ResponseWriter, id int64) {
	s.mu.Lock()
	s.advance()
	a, ok := s.actions[id]
	var cp schema.Action
	if ok {
		cp = a.Action
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("action with ID '%d' not found", id))
		return
	}
	writeJSON(w, http.StatusOK, schema.ActionGetResponse{Action: cp})
}

func (s *Server) listActions(w http.ResponseWriter, r *http.Request) {
	idsQ := r.URL.Query()["id"]
	if len(idsQ) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_input", "id is required")
		return
	}
	s.mu.Lock()
	s.advance()
	var sel []schema.Action
	for _, v := range idsQ {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		if a, ok := s.actions[id]; ok {
			sel = append(sel, a.Action)
		}
	}
	s.mu.Unlock()
	sort.Slice(sel, func(i, j int) bool { return sel[i].ID < sel[j].ID })
	from, to, m, err := paginate(len(sel), r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_input", err.Error())
		return
	}
	items := sel[from:to]
	if items == nil {
		items = []schema.Action{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"actions": items, "meta": schema.Meta{Pagination: &m}})
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
		writeError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError sends {"error":{"code":…,"message":…,"details":{}}}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "details": map[string]any{}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
