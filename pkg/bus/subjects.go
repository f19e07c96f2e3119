package bus

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// Subject prefixes (docs/ARCHITECTURE.md §3). All subjects are versioned.
const (
	Prefix        = "mesh.v1"
	EventsAll     = Prefix + ".evt.>"
	GossipAll     = Prefix + ".gossip.>"
	CommandsAll   = Prefix + ".cmd.>"
	AuditAll      = Prefix + ".audit.>"
	DeadLetterAll = Prefix + ".dlq.>"
	APIPrefix     = Prefix + ".api"
	// EnrollSubject is where a booting node presents its one-time
	// enrollment token (request/reply, no stream): the bootstrap user may
	// publish here and nowhere else; only the leader coordinator answers.
	EnrollSubject = Prefix + ".enroll"
)

// Event kinds published by agents on mesh.v1.evt.<node>.<kind>.
const (
	KindHello     = "hello"
	KindHeartbeat = "heartbeat"
	KindHealth    = "health"
	KindPreempt   = "preempt"
	KindSync      = "sync"
	KindBye       = "bye"
)

var eventKinds = map[string]bool{KindHello: true, KindHeartbeat: true, KindHealth: true, KindPreempt: true, KindSync: true, KindBye: true}

var tokenRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// EventSubject returns mesh.v1.evt.<node>.<kind>; it rejects invalid node IDs and unknown kinds.
func EventSubject(node, kind string) (string, error) {
	if err := mesh.ValidateNodeID(node); err != nil {
		return "", err
	}
	if !eventKinds[kind] {
		return "", fmt.Errorf("unknown event kind %q", kind)
	}
	return Prefix + ".evt." + node + "." + kind, nil
}

// ParseEventSubject splits mesh.v1.evt.<node>.<kind>.
func ParseEventSubject(subj string) (node, kind string, err error) {
	parts := strings.Split(subj, ".")
	if len(parts) != 5 || parts[0]+"."+parts[1] != Prefix || parts[2] != "evt" {
		return "", "", fmt.Errorf("not an event subject: %q", subj)
	}
	if err := mesh.ValidateNodeID(parts[3]); err != nil {
		return "", "", err
	}
	if !eventKinds[parts[4]] {
		return "", "", fmt.Errorf("unknown event kind %q in %q", parts[4], subj)
	}
	return parts[3], parts[4], nil
}

// CommandSubject returns mesh.v1.cmd.<node>.<verb>.
func CommandSubject(node, verb string) (string, error) {
	if err := mesh.ValidateNodeID(node); err != nil {
		return "", err
	}
	if !tokenRe.MatchString(verb) {
		return "", fmt.Errorf("invalid command verb %q", verb)
	}
	return Prefix + ".cmd." + node + "." + verb, nil
}

// CommandsFor returns the wildcard subject of one node's commands.
func CommandsFor(node string) (string, error) {
	if err := mesh.ValidateNodeID(node); err != nil {
		return "", err
	}
	return Prefix + ".cmd." + node + ".>", nil
}

// GossipSubject returns mesh.v1.gossip.<voter>.
func GossipSubject(voter string) (string, error) {
	if err := mesh.ValidateNodeID(voter); err != nil {
		return "", err
	}
	return Prefix + ".gossip." + voter, nil
}

// AuditSubject returns mesh.v1.audit.<kind>.
func AuditSubject(kind string) (string, error) {
	if !tokenRe.MatchString(kind) {
		return "", fmt.Errorf("invalid audit kind %q", kind)
	}
	return Prefix + ".audit." + kind, nil
}

// DeadLetterSubject returns mesh.v1.dlq.<stream>.
func DeadLetterSubject(stream string) string {
	return Prefix + ".dlq." + strings.ToLower(stream)
}

// APISubject returns mesh.v1.api.<op>.
func APISubject(op string) string { return APIPrefix + "." + op }

// AgentConsumer is the durable name of node's command consumer on
// MESH_CMD; a node's credentials allow exactly this consumer.
func AgentConsumer(node string) string { return "agent-" + node }
