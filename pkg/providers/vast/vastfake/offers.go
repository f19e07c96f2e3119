package vastfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
)

// Offer is one ask as POST /api/v0/bundles/ returns it (vastai/data/offer.py
// field names). Pointer fields are omitted from the answer when nil, so a
// test can serve an offer whose figures Vast does not give.
type Offer struct {
	ID                int64    `json:"id"`
	AskContractID     int64    `json:"ask_contract_id,omitempty"`
	MachineID         int64    `json:"machine_id,omitempty"`
	HostID            int64    `json:"host_id,omitempty"`
	NumGPUs           int      `json:"num_gpus"`
	GPUName           string   `json:"gpu_name"`
	GPURAM            *float64 `json:"gpu_ram,omitempty"` // MB per GPU
	CPUCoresEffective *float64 `json:"cpu_cores_effective,omitempty"`
	CPURAM            *float64 `json:"cpu_ram,omitempty"`    // MB
	DiskSpace         *float64 `json:"disk_space,omitempty"` // GB
	DphBase           float64  `json:"dph_base"`
	DphTotal          *float64 `json:"dph_total,omitempty"`
	MinBid            *float64 `json:"min_bid,omitempty"`
	StorageCost       *float64 `json:"storage_cost,omitempty"`
	Reliability       *float64 `json:"reliability,omitempty"`
	Verification      string   `json:"verification"` // "verified", "unverified", "deverified"
	Verified          bool     `json:"verified"`
	Geolocation       string   `json:"geolocation,omitempty"`
	PublicIPAddr      string   `json:"public_ipaddr,omitempty"`
	DirectPortCount   int      `json:"direct_port_count"`
	Rentable          bool     `json:"rentable"`
	Rented            bool     `json:"rented"`
	IsBid             bool     `json:"is_bid"`
}

// AddOffer adds an ask to the search results.
func (s *Server) AddOffer(o Offer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asks = append(s.asks, o)
}

// handleBundles answers POST /api/v0/bundles/: each body key other than
// order, type and limit is a column filter {op: value} with ops eq, neq,
// gt, gte, lt, lte, in, notin, applied to the offer's JSON fields; a
// column the offers do not have is 400 invalid_args. An offer without the
// column (an omitted figure) does not match a filter on it.
func (s *Server) handleBundles(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "bad JSON body"})
		return
	}
	limit := 64
	if raw, ok := body["limit"]; ok {
		if err := json.Unmarshal(raw, &limit); err != nil || limit < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "limit"})
			return
		}
	}
	known := map[string]bool{}
	for _, k := range jsonKeys(Offer{DphTotal: new(float64), MinBid: new(float64), GPURAM: new(float64), CPURAM: new(float64),
		CPUCoresEffective: new(float64), DiskSpace: new(float64), StorageCost: new(float64), Reliability: new(float64)}) {
		known[k] = true
	}
	filters := map[string]map[string]json.RawMessage{}
	for k, raw := range body {
		switch k {
		case "order", "type", "limit":
			continue
		}
		if !known[k] {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "unknown column " + k})
			return
		}
		var ops map[string]json.RawMessage
		if err := json.Unmarshal(raw, &ops); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": "filter " + k})
			return
		}
		filters[k] = ops
	}
	s.mu.Lock()
	asks := append([]Offer(nil), s.asks...)
	s.mu.Unlock()
	out := []map[string]any{}
	for _, a := range asks {
		row := asMap(a)
		ok := true
		for col, ops := range filters {
			for op, want := range ops {
				m, err := compare(row[col], op, want)
				if err != nil {
					writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": fmt.Sprintf("%s %s: %v", col, op, err)})
					return
				}
				ok = ok && m
			}
		}
		if ok {
			out = append(out, row)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return num(out[i]["dph_total"]) < num(out[j]["dph_total"]) })
	if len(out) > limit {
		out = out[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{"offers": out})
}

func asMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	return m
}

func jsonKeys(v any) []string {
	var out []string
	for k := range asMap(v) {
		out = append(out, k)
	}
	return out
}

func num(v any) float64 {
	f, ok := v.(float64)
	if !ok {
		return 1e18
	}
	return f
}

func compare(have any, op string, raw json.RawMessage) (bool, error) {
	var want any
	if err := json.Unmarshal(raw, &want); err != nil {
		return false, err
	}
	if have == nil {
		return false, nil
	}
	switch op {
	case "eq":
		return fmt.Sprint(have) == fmt.Sprint(want), nil
	case "neq":
		return fmt.Sprint(have) != fmt.Sprint(want), nil
	case "in", "notin":
		list, ok := want.([]any)
		if !ok {
			return false, fmt.Errorf("want a list")
		}
		in := false
		for _, x := range list {
			in = in || fmt.Sprint(x) == fmt.Sprint(have)
		}
		return in == (op == "in"), nil
	case "gt", "gte", "lt", "lte":
		h, ok1 := have.(float64)
		wv, ok2 := want.(float64)
		if !ok1 || !ok2 {
			return false, fmt.Errorf("not a number")
		}
		switch op {
		case "gt":
			return h > wv, nil
		case "gte":
			return h >= wv, nil
		case "lt":
			return h < wv, nil
		}
		return h <= wv, nil
	}
	return false, fmt.Errorf("unknown op")
}
