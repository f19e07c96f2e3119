package lambdafake

import "net/http"

// TypeOffer is one entry of GET /instance-types: the type and the regions
// that have capacity for it now.
type TypeOffer struct {
	InstanceType InstanceType `json:"instance_type"`
	Regions      []Region     `json:"regions_with_capacity_available"`
}

// AddInstanceType makes GET /instance-types list t under its name.
func (s *Server) AddInstanceType(t TypeOffer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.types == nil {
		s.types = map[string]TypeOffer{}
	}
	if t.Regions == nil {
		t.Regions = []Region{}
	}
	s.types[t.InstanceType.Name] = t
}

// handleTypes answers GET /instance-types: {"data": {name: TypeOffer}}.
func (s *Server) handleTypes(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := make(map[string]TypeOffer, len(s.types))
	for k, v := range s.types {
		out[k] = v
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}
