package runpodfake

import (
	"encoding/json"
	"net/http"
	"strings"
)

// GPUType is one row of the GraphQL query gpuTypes (runpod-python
// api/queries/gpus.py field names). Prices are USD per GPU-hour; a nil
// price is omitted from the answer (the type is not offered that way).
type GPUType struct {
	ID                 string   `json:"id"`
	DisplayName        string   `json:"displayName"`
	MemoryInGb         *float64 `json:"memoryInGb,omitempty"`
	SecureCloud        bool     `json:"secureCloud"`
	CommunityCloud     bool     `json:"communityCloud"`
	SecurePrice        *float64 `json:"securePrice,omitempty"`
	CommunityPrice     *float64 `json:"communityPrice,omitempty"`
	SecureSpotPrice    *float64 `json:"secureSpotPrice,omitempty"`
	CommunitySpotPrice *float64 `json:"communitySpotPrice,omitempty"`
}

// AddGPUType makes the gpuTypes query list g.
func (s *Server) AddGPUType(g GPUType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gpus = append(s.gpus, g)
}

// handleGraphQL answers POST /graphql {"query": …}. Only the gpuTypes
// query is served: {"data":{"gpuTypes":[…]}}. Anything else gets RunPod's
// GraphQL error form: HTTP 200 with {"errors":[{"message":…}]}.
func (s *Server) handleGraphQL(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Query string `json:"query"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !strings.Contains(body.Query, "gpuTypes") {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []map[string]string{{"message": "fake: only the gpuTypes query is served"}}})
		return
	}
	s.mu.Lock()
	out := append([]GPUType{}, s.gpus...)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"gpuTypes": out}})
}
