package hetznerfake

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// Creates returns how many create calls the fake applied.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// createServer answers POST /v1/servers (schema.ServerCreateRequest): 400
// invalid_input without name, server_type and image or for an unknown type
// or location, 409 uniqueness_error for a name in use; else a server
// "initializing" that runs after ActionDelay, and 201 {server, action,
// next_actions, root_password}.
func (s *Server) createServer(w http.ResponseWriter, r *http.Request) {
	var body schema.ServerCreateRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_input", "invalid JSON body")
		return
	}
	typeName, image := body.ServerType.Name, body.Image.Name
	if body.Name == "" || typeName == "" || image == "" {
		writeError(w, http.StatusBadRequest, "invalid_input", "name, server_type and image are required")
		return
	}
	if _, ok := findType(typeName); !ok {
		writeError(w, http.StatusBadRequest, "invalid_input", "unknown server_type "+typeName)
		return
	}
	loc := body.Location
	if loc == "" {
		loc = "fsn1"
	}
	if _, ok := findLocation(loc); !ok {
		writeError(w, http.StatusBadRequest, "invalid_input", "unknown location "+loc)
		return
	}
	s.mu.Lock()
	for _, sv := range s.servers {
		if sv.Name == body.Name {
			s.mu.Unlock()
			writeError(w, http.StatusConflict, "uniqueness_error", fmt.Sprintf("server name %q is already used", body.Name))
			return
		}
	}
	s.creates++
	s.mu.Unlock()
	labels := map[string]string{}
	if body.Labels != nil {
		labels = *body.Labels
	}
	id := s.Seed(SeedServer{Name: body.Name, Status: "initializing", ServerType: typeName, Location: loc, Labels: labels})[0]
	s.mu.Lock()
	now := s.opts.Now()
	sv := s.servers[id]
	done := now.Add(s.opts.ActionDelay)
	sv.busyUntil = done
	sv.next = []transition{{at: done, status: "running"}}
	s.nextAct++
	a := &action{Action: schema.Action{ID: s.nextAct, Command: "create_server", Status: "running", Started: now.UTC(),
		Resources: []schema.ActionResourceReference{{ID: id, Type: "server"}}}, doneAt: done}
	s.actions[a.ID] = a
	out := sv.Server
	act := a.Action
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, schema.ServerCreateResponse{Server: out, Action: act, NextActions: []schema.Action{}})
}
