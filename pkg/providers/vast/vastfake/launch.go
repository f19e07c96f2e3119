package vastfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// CreateBody is the part of the create body (PUT /api/v0/asks/{id}/) the
// fake reads (docs/provider-apis.md §1; vast-cli create instance).
type CreateBody struct {
	ClientID string            `json:"client_id"`
	Image    string            `json:"image"`
	Disk     float64           `json:"disk"`
	Label    string            `json:"label"`
	Env      map[string]string `json:"env"`
	Onstart  string            `json:"onstart"`
	Runtype  string            `json:"runtype"`
	Price    *float64          `json:"price"` // bid per hour: interruptible
}

// Creates returns how many create calls the fake applied.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// handleCreate rents an ask: 404 no_such_ask when the ask is unknown, 410
// when it is rented already; else a new instance that boots like Launch,
// carrying label, env (as extra_env), onstart and the offer's hardware, and
// {"success":true,"new_contract":id}.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	askID, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "ask id must be an integer"})
		return
	}
	var body CreateBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "body is not JSON: " + err.Error()})
		return
	}
	if body.ClientID != "me" || body.Image == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "client_id must be \"me\" and image is required"})
		return
	}
	var env [][2]string
	for k := range body.Env {
		opt, ok := strings.CutPrefix(k, "-e ")
		if !ok {
			continue // port options "-p 8080:8080"
		}
		name, val, ok := strings.Cut(opt, "=")
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "env option " + k + " has no '='"})
			return
		}
		env = append(env, [2]string{name, val})
	}
	s.mu.Lock()
	idx := -1
	for i, a := range s.asks {
		if a.ID == askID {
			idx = i
		}
	}
	if idx < 0 {
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "no_such_ask", "msg": fmt.Sprintf("ask %d is not available", askID)})
		return
	}
	ask := s.asks[idx]
	if ask.Rented || !ask.Rentable {
		s.mu.Unlock()
		writeJSON(w, http.StatusGone, map[string]any{"success": false, "error": "no_such_ask", "msg": fmt.Sprintf("ask %d is no longer available", askID)})
		return
	}
	s.asks[idx].Rented = true
	s.creates++
	s.mu.Unlock()

	label := body.Label
	in := Instance{
		MachineID: ask.MachineID, HostID: ask.HostID, Label: &label,
		ImageUUID: body.Image, ImageRuntype: body.Runtype,
		GPUName: ask.GPUName, NumGPUs: ask.NumGPUs, DphBase: ask.DphBase,
		Geolocation: ask.Geolocation, Verification: ask.Verification, PublicIPAddr: ask.PublicIPAddr,
		SSHHost: "ssh5.vast.ai", SSHPort: 20000 + int(askID%10000), SSHIdx: "5",
		DirectPortStart: 40000, DirectPortEnd: 40010, DirectSSHPort: 40001,
		DiskSpace: body.Disk, ExtraEnv: env, Onstart: body.Onstart,
		StartDate: float64(s.opts.Now().UnixMicro()) / 1e6,
	}
	if ask.GPURAM != nil {
		in.GPURAM, in.GPUTotalRAM = *ask.GPURAM, *ask.GPURAM*float64(ask.NumGPUs)
	}
	if ask.CPUCoresEffective != nil {
		in.CPUCoresEffective = *ask.CPUCoresEffective
	}
	if ask.CPURAM != nil {
		in.CPURAM = *ask.CPURAM
	}
	if ask.DphTotal != nil {
		in.DphTotal = *ask.DphTotal
	}
	if body.Price != nil {
		in.IsBid, in.DphTotal, in.MinBid = true, *body.Price, *body.Price
	}
	id := s.Launch(in)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "new_contract": id, "instance_api_key": "fake-instance-key"})
}

// All returns every instance, sorted by ID.
func (s *Server) All() []Instance { return s.snapshot() }
