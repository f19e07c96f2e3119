package vultr

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vultr/govultr/v3"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// HoursPerMonth is the divisor used to derive an hourly price from a plan's
// monthly_cost when the API does not return hourly_cost: 730 h = 365 d × 24 h / 12.
// Vultr bills hourly up to the monthly cap, so monthly/730 is the steady-state
// hourly rate (docs.vultr.com "How am I billed for my servers").
const HoursPerMonth = 730.0

// Price sources written into providers.Price.Source.
const (
	SourceHourly  = "vultr:plan.hourly_cost"      // live API field (not decoded by govultr v3.34.0)
	SourceMonthly = "vultr:plan.monthly_cost/730" // derived: monthly_cost / HoursPerMonth
)

// mapState turns Vultr's three status words into a normalised state.
//
// Vultr API v2 fields (OpenAPI "instance" object): status ∈ {pending, active,
// suspended, resizing}; power_status ∈ {running, stopped}; server_status ∈
// {none, locked, installingbooting, ok}. Healthy = active + running + ok.
//
//	status     power_status  server_status       -> State
//	pending    *             *                   -> pending
//	resizing   *             *                   -> starting  (transient, still billed)
//	suspended  *             *                   -> stopped   (suspended by Vultr; halted servers bill)
//	active     stopped       *                   -> stopped   (halted; still billed)
//	active     running       ok | locked         -> running   (locked = an operation holds the server; it still runs)
//	active     running       none | installingbooting | "" -> starting
//	active     "" (absent)   *                   -> unknown
//	anything else (empty, new words)             -> unknown
func mapState(status, power, server string) providers.State {
	switch strings.ToLower(status) {
	case "pending":
		return providers.StatePending
	case "resizing":
		return providers.StateStarting
	case "suspended":
		return providers.StateStopped
	case "active":
		switch strings.ToLower(power) {
		case "stopped":
			return providers.StateStopped
		case "running":
			switch strings.ToLower(server) {
			case "ok", "locked":
				return providers.StateRunning
			case "none", "installingbooting", "":
				return providers.StateStarting
			}
		}
	}
	return providers.StateUnknown
}

// rawState joins the three status words as "status/power_status/server_status";
// it is "" when all three are empty (null in the JSON).
func rawState(status, power, server string) string {
	if status == "" && power == "" && server == "" {
		return ""
	}
	return status + "/" + power + "/" + server
}

// plan is the subset of a Vultr plan that ringmesh uses. It is decoded from the
// raw /v2/plans JSON because govultr v3.34.0's Plan struct lacks hourly_cost and
// gpu_count (docs/provider-apis.md §4).
type plan struct {
	ID          string   `json:"id"`
	VCPUCount   int      `json:"vcpu_count"`
	RAM         int      `json:"ram"` // MB
	MonthlyCost *float64 `json:"monthly_cost"`
	HourlyCost  *float64 `json:"hourly_cost"`
	Type        string   `json:"type"`
	GPUVRAMGB   int      `json:"gpu_vram_gb"`
	GPUType     string   `json:"gpu_type"`
	GPUCount    int      `json:"gpu_count"`
	Disk        int      `json:"disk"`      // GB
	Locations   []string `json:"locations"` // region IDs where the plan can be deployed
}

type plansResponse struct {
	Plans []plan        `json:"plans"`
	Meta  *govultr.Meta `json:"meta"`
}

// price returns the plan's hourly price in USD/hour. hourly_cost wins when the
// API sends it; otherwise monthly_cost/730. A plan without either (or with a
// negative value) has an unknown price (zero Price, Known() false).
func (p plan) price() providers.Price {
	if p.HourlyCost != nil && *p.HourlyCost >= 0 {
		return providers.Price{PerHour: *p.HourlyCost, Currency: "USD", Source: SourceHourly}
	}
	if p.MonthlyCost != nil && *p.MonthlyCost >= 0 {
		return providers.Price{PerHour: *p.MonthlyCost / HoursPerMonth, Currency: "USD", Source: SourceMonthly}
	}
	return providers.Price{}
}

// planIDRe parses Cloud GPU plan IDs such as "vcg-a100-1c-6g-4vram",
// "vcg-l40s-16c-180g-48vram" or "vcg-h100-1c-80g": GPU word, vCPUs, RAM GB,
// optional VRAM GB.
var planIDRe = regexp.MustCompile(`^vcg-([a-z0-9]+)-(\d+)c-(\d+)g(?:-(\d+)vram)?`)

// gpuInfo returns (model, count, per-GPU memory GiB) for a plan. It prefers the
// plan's gpu_type / gpu_vram_gb / gpu_count fields; without them it parses the
// plan ID. A CPU plan returns ("", 0, 0). Unknown GPU words are kept raw
// (providers.NormalizeGPU never guesses). gpu_vram_gb is the plan's total VRAM
// (a vGPU slice for fractional A100 plans), divided by the GPU count.
func gpuInfo(planID string, p *plan) (model string, count int, memGiB float64) {
	var vram int
	if p != nil && p.GPUType != "" {
		model = providers.NormalizeGPU(p.GPUType)
		vram = p.GPUVRAMGB
		count = p.GPUCount
	}
	if m := planIDRe.FindStringSubmatch(strings.ToLower(planID)); m != nil {
		if model == "" {
			model = providers.NormalizeGPU(m[1])
		}
		if vram == 0 && m[4] != "" {
			vram, _ = strconv.Atoi(m[4])
		}
	}
	if model == "" {
		return "", 0, 0
	}
	if count <= 0 {
		count = 1 // one (possibly fractional) GPU unless the API says more
	}
	return model, count, float64(vram) / float64(count)
}

// toInstance normalises a govultr instance. plans may be nil (prices unknown).
func toInstance(in govultr.Instance, plans map[string]plan) providers.Instance {
	out := providers.Instance{
		ID:       in.ID,
		Provider: Name,
		Name:     in.Label,
		State:    mapState(in.Status, in.PowerStatus, in.ServerStatus),
		RawState: rawState(in.Status, in.PowerStatus, in.ServerStatus),
		CPUs:     float64(in.VCPUCount),
		Region:   in.Region,
	}
	if out.Name == "" {
		out.Name = in.Hostname
	}
	if in.RAM > 0 {
		out.MemoryGiB = float64(in.RAM) / 1024 // ram is MB
	}
	if ip, ok := providers.CleanHost(in.MainIP); ok && ip != "0.0.0.0" {
		out.PublicIP = ip
		out.SSH = []providers.SSHEndpoint{{Kind: providers.EndpointDirect, Host: ip, Port: 22, User: "root"}}
	}
	if t, err := time.Parse(time.RFC3339, in.DateCreated); err == nil {
		out.CreatedAt = t.UTC()
	}
	var pl *plan
	if p, ok := plans[in.Plan]; ok {
		pl = &p
		out.Price = p.price()
	}
	out.GPUModel, out.GPUCount, out.GPUMemGiB = gpuInfo(in.Plan, pl)
	if len(in.Tags) > 0 {
		out.Tags = append([]string(nil), in.Tags...) // as the API gives them, in order
	}
	if len(in.Tags) > 0 || in.Plan != "" {
		out.Labels = make(map[string]string, len(in.Tags)+1)
		for _, tag := range in.Tags {
			k, v, _ := strings.Cut(tag, "=")
			out.Labels[k] = v
		}
		if in.Plan != "" {
			out.Labels[LabelPlan] = in.Plan
		}
	}
	return out
}

// LabelPlan is the Instance.Labels key under which the Vultr plan ID
// (e.g. "vcg-a100-1c-6g-4vram") is reported.
const LabelPlan = "vultr.plan"
