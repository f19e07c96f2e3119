package api

import (
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

// Launch operations (leader only). OpLaunch rents an offer (dry-run unless
// asked otherwise); OpLaunchStatus says how far a launch got.
const (
	OpLaunch       = "launch"
	OpLaunchStatus = "launch_status"
)

// LaunchRequest asks OpLaunch for one new node. Either OfferID names an
// offer of `meshctl offers` (with Provider, and Region/Interruptible to
// pick among offers sharing an ID), or Filter picks the cheapest matching
// offer (Provider and Filter.Region narrow it). Node is the new node's ID
// ("" = derived from the provider, GPU and request ID). RequestID is the
// idempotency key (required unless DryRun): a launch repeated with the same
// ID creates at most one instance. Image, DiskGiB and SSHKeyName go to the
// cloud (Lambda needs SSHKeyName).
type LaunchRequest struct {
	OfferID       string                `json:"offer_id,omitempty"`
	Provider      string                `json:"provider,omitempty"`
	Region        string                `json:"region,omitempty"`
	Interruptible *bool                 `json:"interruptible,omitempty"`
	Filter        providers.OfferFilter `json:"filter"`
	Node          string                `json:"node,omitempty"`
	RequestID     string                `json:"request_id,omitempty"`
	DryRun        bool                  `json:"dry_run"`
	Image         string                `json:"image,omitempty"`
	DiskGiB       int                   `json:"disk_gib,omitempty"`
	SSHKeyName    string                `json:"ssh_key_name,omitempty"`
	// TimeoutSeconds bounds each cloud's offers answer (0 = 10 s, at most 25 s).
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	// Reason is recorded in the audit stream.
	Reason string `json:"reason,omitempty"`
}

// BudgetCheck is one budget cap a launch was checked against: today's
// spend plus the current burn and the new instance's price until the end
// of the UTC day, against the cap.
type BudgetCheck struct {
	Scope     string  `json:"scope"` // "all" or a provider
	Currency  string  `json:"currency"`
	Cap       float64 `json:"cap"`
	Spent     float64 `json:"spent"`
	Burn      float64 `json:"burn_per_hour"` // before the launch
	Added     float64 `json:"added_per_hour"`
	HoursLeft float64 `json:"hours_left"`
	Projected float64 `json:"projected"` // Spent + (Burn + Added) × HoursLeft
	Over      bool    `json:"over"`
}

// Launch is the answer to OpLaunch. Offer is what is (or would be) rented,
// PerHour and PerDay its price in Currency (PerDay = 24 × PerHour).
// Budget lists the caps checked. Instance is set once created (with its
// provider ID). Stage is "dry-run", "created" or "already created" (the
// request ID had made it before).
type Launch struct {
	RequestID string              `json:"request_id,omitempty"`
	Node      string              `json:"node"`
	Offer     providers.Offer     `json:"offer"`
	PerHour   *float64            `json:"per_hour"`
	PerDay    *float64            `json:"per_day"`
	Currency  string              `json:"currency,omitempty"`
	Budget    []BudgetCheck       `json:"budget,omitempty"`
	DryRun    bool                `json:"dry_run"`
	Stage     string              `json:"stage"`
	Instance  *providers.Instance `json:"instance,omitempty"`
	Message   string              `json:"message"`
	// Script says which startup script the node gets (e.g. "enroll-token",
	// "no-token: waits for credentials"), never the script's secrets.
	Script string `json:"script,omitempty"`
	// Alternatives counts other matching offers (a filter launch).
	Alternatives int                      `json:"alternatives,omitempty"`
	Missing      []providers.MissingCloud `json:"missing,omitempty"`
}

// LaunchStatusRequest asks OpLaunchStatus about the launch with RequestID.
type LaunchStatusRequest struct {
	RequestID string `json:"request_id"`
}

// Launch stages, in order, as OpLaunchStatus reports them.
const (
	LaunchStageCreated      = "created"        // the request is recorded, the instance not seen yet
	LaunchStageBooting      = "booting"        // the instance exists, not running yet
	LaunchStageAgentNotSeen = "agent not seen" // the instance runs, its agent has not reported
	LaunchStageUnhealthy    = "unhealthy"      // the agent reports, the node is not healthy
	LaunchStageHealthy      = "healthy"        // the node is healthy in the registry
	LaunchStageGone         = "gone"           // the instance was terminated, preempted or failed
)

// LaunchStatus is the answer to OpLaunchStatus.
type LaunchStatus struct {
	RequestID     string    `json:"request_id"`
	Node          string    `json:"node"`
	Provider      string    `json:"provider"`
	InstanceID    string    `json:"instance_id"`
	Stage         string    `json:"stage"`
	InstanceState string    `json:"instance_state,omitempty"`
	NodeState     string    `json:"node_state,omitempty"`
	Detail        string    `json:"detail,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}
