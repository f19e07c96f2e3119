package auth

import (
	"fmt"

	"github.com/nats-io/jwt/v2"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// Role is what a user may do on the bus (docs/security.md has the table).
type Role string

// Roles. A user's role is in its JWT (tag "role:<role>") and decides its
// permissions there; the coordinator also checks it on signed API requests.
const (
	// RoleNode is an agent: it publishes its own events and consumes its own commands.
	RoleNode Role = "node"
	// RoleCoordinator is a voter's control plane: everything in the account.
	RoleCoordinator Role = "coordinator"
	// RoleViewer is an operator who may only read (status, rpo, paths, ...).
	RoleViewer Role = "viewer"
	// RoleAdmin is an operator who may also act (start, stop, terminate,
	// force), sync, and revoke credentials.
	RoleAdmin Role = "admin"
)

// ParseRole checks s names a role.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleNode, RoleCoordinator, RoleViewer, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want node, coordinator, viewer or admin)", s)
}

// ReadOps are the API operations a viewer may call; every other operation
// (AdminOps) needs the admin role. Every operation the coordinator serves
// is in exactly one of the two lists (a coordinator test checks).
var ReadOps = []string{"status", "dead_letters", "instances", "ssh_config", "paths", "cost", "members", "safe_to_terminate", "routes", "audit", "offers", "events", "launch_status"}

// AdminOps are the API operations only an admin may call: they change
// something (act: start/stop/terminate, sync: push now, revoke, launch:
// rent a new instance).
var AdminOps = []string{"act", "sync", "revoke", "launch"}

// Permissions returns the bus permissions of a user with role r named
// name. Everything not allowed is denied: no user but a coordinator can
// reach $JS.API beyond its own consumer, KV, direct get, advisories or
// other users' inboxes.
func Permissions(r Role, name string) (jwt.Permissions, error) {
	if err := mesh.ValidateNodeID(name); err != nil {
		return jwt.Permissions{}, err
	}
	inbox := bus.InboxPrefix(name) + ".>"
	var p jwt.Permissions
	switch r {
	case RoleCoordinator:
		p.Pub.Allow.Add(">")
		p.Sub.Allow.Add(">")
	case RoleNode:
		cons := bus.AgentConsumer(name)
		cmds, _ := bus.CommandsFor(name)
		p.Pub.Allow.Add(
			bus.Prefix+".evt."+name+".>",                                    // its own events (JetStream publishes, acks to its inbox)
			"$JS.API.CONSUMER.CREATE."+bus.StreamCommands+"."+cons+"."+cmds, // its own command consumer, filtered to its commands
			"$JS.API.CONSUMER.INFO."+bus.StreamCommands+"."+cons,
			"$JS.API.CONSUMER.MSG.NEXT."+bus.StreamCommands+"."+cons,
			"$JS.ACK."+bus.StreamCommands+"."+cons+".>",
		)
		p.Sub.Allow.Add(inbox)
	case RoleViewer, RoleAdmin:
		if r == RoleAdmin {
			p.Pub.Allow.Add(bus.APIPrefix + ".>")
			p.Sub.Allow.Add(bus.Prefix + ".evt.*." + bus.KindSync) // meshctl sync shows the agent's progress
		} else {
			for _, op := range ReadOps {
				p.Pub.Allow.Add(bus.APISubject(op))
			}
		}
		p.Sub.Allow.Add(inbox)
	default:
		return jwt.Permissions{}, fmt.Errorf("unknown role %q", r)
	}
	return p, nil
}
