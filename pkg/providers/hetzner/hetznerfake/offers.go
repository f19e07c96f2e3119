package hetznerfake

import (
	"net/http"
	"strconv"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// listServerTypes answers GET /v1/server_types[?page=&per_page=] with the
// ServerTypes catalogue: {"server_types":[…],"meta":{"pagination":{…}}}.
func (s *Server) listServerTypes(w http.ResponseWriter, r *http.Request) {
	all := ServerTypes()
	page, per := 1, 25
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 && v <= 50 {
		per = v
	}
	start := (page - 1) * per
	if start > len(all) {
		start = len(all)
	}
	end := min(start+per, len(all))
	m := schema.MetaPagination{Page: page, PerPage: per, TotalEntries: len(all), LastPage: (len(all) + per - 1) / per}
	if end < len(all) {
		m.NextPage = page + 1
	}
	if page > 1 {
		m.PreviousPage = page - 1
	}
	writeJSON(w, http.StatusOK, map[string]any{"server_types": all[start:end], "meta": schema.Meta{Pagination: &m}})
}
