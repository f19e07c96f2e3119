package vultrfake

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
)

// CreateBody is the part of POST /v2/instances the fake reads (govultr InstanceCreateReq).
type CreateBody struct {
	Region   string   `json:"region"`
	Plan     string   `json:"plan"`
	Label    string   `json:"label"`
	Hostname string   `json:"hostname"`
	Tags     []string `json:"tags"`
	OsID     int      `json:"os_id"`
	UserData string   `json:"user_data"` // base64
	SSHKeys  []string `json:"sshkey_id"`
}

// Creates returns how many create calls the fake applied.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// createInstance answers POST /v2/instances: 400 unless region, plan (one
// the region offers) and os_id are given and user_data is base64; else a
// pending instance that boots like Seed's, and 202 {"instance":{…}} with
// main_ip 0.0.0.0 (not assigned yet).
func (s *Server) createInstance(w http.ResponseWriter, r *http.Request) {
	var body CreateBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body.")
		return
	}
	if body.Region == "" || body.Plan == "" || body.OsID <= 0 {
		writeError(w, http.StatusBadRequest, "region, plan and os_id are required.")
		return
	}
	if _, err := base64.StdEncoding.DecodeString(body.UserData); err != nil {
		writeError(w, http.StatusBadRequest, "user_data must be base64 encoded.")
		return
	}
	s.mu.Lock()
	pl, ok := s.plan(body.Plan)
	inRegion := false
	for _, l := range pl.Locations {
		inRegion = inRegion || l == body.Region
	}
	if !ok || !inRegion {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "Plan is not available in the selected region.")
		return
	}
	s.creates++
	s.mu.Unlock()
	tags := body.Tags
	if tags == nil {
		tags = []string{}
	}
	in := s.Seed(Instance{Region: body.Region, Plan: body.Plan, Label: body.Label, Hostname: body.Hostname, Tags: tags, OSID: body.OsID, MainIP: "0.0.0.0"})[0]
	writeJSON(w, http.StatusAccepted, map[string]any{"instance": in})
}
