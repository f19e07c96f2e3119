package meshsync

import "github.com/ringmesh/ringmesh/pkg/sync/route"

// The router lives in pkg/sync/route (no engine dependencies); these names
// keep it reachable as meshsync's own.
type (
	// NodeInfo is what the router needs to know about a node (route.NodeInfo).
	NodeInfo = route.NodeInfo
	// ExcludedHost is one sync_routing excluded_hosts entry (route.ExcludedHost).
	ExcludedHost = route.ExcludedHost
	// RoutingPolicy is the inventory's sync_routing (route.RoutingPolicy).
	RoutingPolicy = route.RoutingPolicy
	// Choice is the router's verdict on one candidate (route.Choice).
	Choice = route.Choice
)

// Route ranks candidates as receivers of source's data: route.Route.
func Route(source NodeInfo, candidates []NodeInfo, policy RoutingPolicy) []Choice {
	return route.Route(source, candidates, policy)
}

// Selected returns the selected choices in rank order: route.Selected.
func Selected(choices []Choice) []Choice { return route.Selected(choices) }
