package lambdafake

import (
	"encoding/json"
	"net/http"
)

// LaunchBody is the part of POST /instance-operations/launch the fake reads
// (docs/provider-apis.md §3, Lambda Cloud API 1.10.0).
type LaunchBody struct {
	RegionName       string   `json:"region_name"`
	InstanceTypeName string   `json:"instance_type_name"`
	SSHKeyNames      []string `json:"ssh_key_names"`
	Name             string   `json:"name"`
	UserData         string   `json:"user_data"`
	Tags             []Tag    `json:"tags"`
	Quantity         int      `json:"quantity"`
}

// Creates returns how many launch calls the fake applied.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// LastUserData returns the user_data of the latest launch.
func (s *Server) LastUserData() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userData
}

// handleLaunch answers POST /instance-operations/launch: 400
// global/invalid-parameters unless exactly one SSH key is named, 400
// instance-operations/launch/insufficient-capacity when the type has no
// capacity in the region; else quantity (default 1) instances booting like
// Launch and {"data":{"instance_ids":[…]}}.
func (s *Server) handleLaunch(w http.ResponseWriter, r *http.Request) {
	var body LaunchBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		apiError(w, http.StatusBadRequest, "global/invalid-parameters", "body is not JSON: "+err.Error())
		return
	}
	if len(body.SSHKeyNames) != 1 {
		apiError(w, http.StatusBadRequest, "global/invalid-parameters", "ssh_key_names must name exactly one key")
		return
	}
	if body.Quantity == 0 {
		body.Quantity = 1
	}
	s.mu.Lock()
	t, ok := s.types[body.InstanceTypeName]
	capacity := false
	var region Region
	for _, rg := range t.Regions {
		if rg.Name == body.RegionName {
			capacity, region = true, rg
		}
	}
	if !ok || !capacity {
		s.mu.Unlock()
		apiError(w, http.StatusBadRequest, "instance-operations/launch/insufficient-capacity", "Not enough capacity to fulfill launch request.")
		return
	}
	s.creates++
	s.userData = body.UserData
	s.mu.Unlock()
	ids := []string{}
	for range body.Quantity {
		ip := "203.0.113.90"
		ids = append(ids, s.Launch(Instance{Name: body.Name, IP: &ip, SSHKeyNames: body.SSHKeyNames, Region: region,
			InstanceType: t.InstanceType, Tags: body.Tags}))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"instance_ids": ids}})
}
