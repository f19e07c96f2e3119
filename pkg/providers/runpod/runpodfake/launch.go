package runpodfake

import (
	"encoding/json"
	"net/http"
)

// CreateBody is the part of POST /v2/pods the fake reads (docs/provider-apis.md §2b).
type CreateBody struct {
	Name           string            `json:"name"`
	Image          string            `json:"image"`
	GPU            *GPU              `json:"gpu"`
	Disk           int               `json:"disk"`
	Ports          []string          `json:"ports"`
	Env            map[string]string `json:"env"`
	Cloud          string            `json:"cloud"`
	Interruptible  bool              `json:"interruptible"`
	DockerStartCmd []string          `json:"dockerStartCmd"`
	StartSSH       bool              `json:"startSsh"`
}

// Creates returns how many create calls the fake applied.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// handleCreate answers POST /v2/pods: 400 problem+json when the GPU type is
// unknown or not offered in that cloud and kind; else a new pod booting
// like Launch, priced from the GPU type, 201 with the Pod.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	var body CreateBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		problem(w, http.StatusBadRequest, "Bad Request", "body is not JSON: "+err.Error())
		return
	}
	if body.Name == "" || body.Image == "" || body.GPU == nil || body.GPU.ID == "" || body.GPU.Count < 1 {
		problem(w, http.StatusBadRequest, "Bad Request", "name, image and gpu {id, count >= 1} are required")
		return
	}
	s.mu.Lock()
	var rate *float64
	for _, g := range s.gpus {
		if g.ID != body.GPU.ID {
			continue
		}
		switch {
		case body.Cloud == "COMMUNITY" && body.Interruptible && g.CommunityCloud:
			rate = g.CommunitySpotPrice
		case body.Cloud == "COMMUNITY" && g.CommunityCloud:
			rate = g.CommunityPrice
		case body.Cloud != "COMMUNITY" && body.Interruptible && g.SecureCloud:
			rate = g.SecureSpotPrice
		case body.Cloud != "COMMUNITY" && g.SecureCloud:
			rate = g.SecurePrice
		}
	}
	if rate == nil {
		s.mu.Unlock()
		problem(w, http.StatusBadRequest, "Bad Request", "There are no instances currently available for GPU type "+body.GPU.ID)
		return
	}
	s.creates++
	s.mu.Unlock()
	cloud := body.Cloud
	if cloud == "" {
		cloud = "SECURE"
	}
	id := s.Launch(Pod{
		Name: body.Name, Image: body.Image, Args: body.DockerStartCmd, Disk: body.Disk, Ports: body.Ports, Env: body.Env,
		Cloud: cloud, DataCenterID: "US-TX-3", GPU: &GPU{ID: body.GPU.ID, Count: body.GPU.Count},
		Interruptible: body.Interruptible, RatePerHour: *rate * float64(body.GPU.Count),
		PublicIP: "203.0.113.77", SSHPort: 34446,
	})
	p, _ := s.Pod(id)
	writeJSON(w, http.StatusCreated, p)
}
