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
	// RoleBootstrap is the one credential shared by nodes that boot by
	// themselves (a launched instance's startup script): it may only send
	// an enrollment request (bus.EnrollSubject) and read the reply, so a
	// node that holds it and a one-time token (docs/enrollment-token.md)
	// can obtain its own node credentials, and nothing else.
	RoleBootstrap Role = "bootstrap"
)

// BootstrapName is the name the shared bootstrap credential is issued
// under (`meshctl creds issue --role bootstrap`); its inbox prefix is
// bus.InboxPrefix(BootstrapName).
const BootstrapName = "bootstrap"

// BootstrapMaxPayload is the largest message a bootstrap user may publish,
// bytes (the server closes a connection that sends more); an enrollment
// request is a few hundred bytes.
const BootstrapMaxPayload = 4096

// ParseRole checks s names a role.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleNode, RoleCoordinator, RoleViewer, RoleAdmin, RoleBootstrap:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want node, coordinator, viewer, admin or bootstrap)", s)
}

// ReadOps are the API operations a viewer may call; every other operation
// (AdminOps) needs the admin role. Every operation the coordinator serves
// is in exactly one of the two lists (a coordinator test checks).
var ReadOps = []string{"status", "dead_letters", "instances", "ssh_config", "paths", "cost", "members", "safe_to_terminate", "routes", "audit", "offers", "events", "launch_status"}

// AdminOps are the API operations only an admin may call: they change
// something (act: start/stop/terminate, sync: push now, revoke, enroll:
// issue a node credential, forget: remove a departed node, launch: rent a
// new instance) or handle secrets (enrollment tokens: create, list, revoke).
var AdminOps = []string{"act", "sync", "revoke", "enroll", "forget", "token_create", "token_list", "token_revoke", "launch"}

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
	case RoleBootstrap:
		// One request subject and its own inbox for the reply: no events,
		// no JetStream, no API, no other inbox.
		p.Pub.Allow.Add(bus.EnrollSubject)
		p.Sub.Allow.Add(inbox)
	default:
		return jwt.Permissions{}, fmt.Errorf("unknown role %q", r)
	}
	return p, nil
}

// limitRole sets the connection limits of role r's JWT: a bootstrap user
// may publish at most BootstrapMaxPayload bytes per message and hold two
// subscriptions (its reply inbox); other roles keep the account's limits.
func limitRole(r Role, l *jwt.Limits) {
	if r == RoleBootstrap {
		l.Payload = BootstrapMaxPayload
		l.Subs = 2
	}
}
