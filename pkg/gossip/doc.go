// Package gossip is ringmesh's liveness layer: a thin, explicitly configured
// wrapper around hashicorp/memberlist (SWIM + Lifeguard), in the way Serf and
// Consul use it. Gossip gives fast, eventually consistent *hints* (who is
// alive, who left, who failed, a few bytes of metadata per node); the
// authoritative cluster state lives in JetStream (see docs/ARCHITECTURE.md §2, §4, §5).
//
// # What this package adds to memberlist
//
//   - Explicit configuration ([Config]): stable node name (= node ID),
//     bind and advertise address (never guessed on multi-NIC GPU hosts),
//     timing profile, cluster label, AES-GCM keyring, seeds.
//   - A versioned, compact node metadata codec ([Meta], at most
//     [MetaMaxSize] = 512 bytes on the wire).
//   - A non-blocking event stream ([Member.Events]) with Join, Leave,
//     Fail and Update events, and a member view ([Member.Members]) that
//     also remembers dead and left nodes for a while (tombstones).
//   - Periodic re-join of the seeds, so that a healed partition merges again.
//   - Clear, rate-limited log lines and Prometheus counters for the three
//     misconfigurations that otherwise fail silently: wrong gossip key,
//     wrong cluster label, and node-name conflicts.
//   - [PartitionTransport], a test transport that cuts packets and stream
//     connections between groups of addresses, to test partition and heal.
//
// # Choices
//
// Profiles. "cluster" (see below) is what the flags default to. "lan" (memberlist.DefaultLANConfig: probe every 1 s, probe
// timeout 500 ms, suspicion multiplier 4, gossip every 200 ms to 3 nodes)
// is the library default. "wan" (DefaultWANConfig: probe every 5 s,
// timeout 3 s, suspicion multiplier 6, gossip every 500 ms to 4 nodes)
// trades detection speed for fewer false suspicions on lossy, high-latency
// paths (e.g. nodes on other continents). "local" (DefaultLocalConfig:
// probe timeout 200 ms, gossip every 100 ms) is for tests and single-host
// development only.
//
// Failure detection. A crashed node is suspected after a failed probe
// (direct, then indirect through other members) and declared dead when its
// suspicion timer expires: between SuspicionMult × max(1, log10 N) ×
// ProbeInterval (enough independent confirmations) and
// SuspicionMaxTimeoutMult (6) times that (none). On the LAN profile that is
// roughly 4–24 s for up to 10 nodes and 8–48 s for 100 nodes, then
// O(log N) gossip rounds to reach everyone.
//
// Fail versus Leave. memberlist reports a graceful leave and a failure
// through the same NotifyLeave callback, and memberlist v0.7.0 does not fill
// in memberlist.Node.State for it (the field is shadowed by the internal node
// state). So, like Serf, a member that leaves gracefully first gossips a
// small "leave intent" message (re-broadcast by every receiver, epidemic
// style) and then calls memberlist's Leave. A NotifyLeave for a node with a
// recent leave intent becomes a Leave event, any other becomes a Fail event;
// an intent that arrives after the Fail was emitted turns it into a Leave
// (a second event for the same node). Should a later memberlist fill in
// Node.State, StateLeft is honoured as well.
//
// Suspect state. memberlist does not expose suspicion either. A member
// marks a node "suspect" in [Member.Members] and emits [EventSuspect] when
// its own probe of it failed (memberlist's "Suspect X has failed" log
// line), and then spreads a small suspect report (a user message like the
// leave intent, re-broadcast once by every receiver), so that every member,
// the voters above all, hears of the suspicion within a few gossip rounds:
// memberlist gossips its own suspect messages but tells no delegate, and
// with N members a voter probes a given node only once every N probe
// intervals. The suspicion ends with [EventFail], or with [EventAlive] when
// the node answers one of this member's probes, or when memberlist's
// longest suspicion timeout passes without a verdict (the node refuted it).
// A report about this member itself is ignored (memberlist refutes).
//
// Profile "cluster" ([ProfileCluster]) is the one ringmesh's command-line
// flags default to: probe every 700 ms with a 400 ms timeout, suspicion
// multiplier 4. Measured on loopback with 200 members (BENCHMARKS.md): a
// crash is suspected by every member in about 1.5–2 s and failed by all in
// about 8 s, with no false suspicion of the other members.
//
// Rejoin interval (default 30 s, like Serf's ReconnectInterval). memberlist
// never re-merges two halves of a partition on its own: once each side has
// declared the other dead and GossipToTheDeadTime has passed, nobody talks
// to the other side again. Every RejoinInterval (±10 % jitter) the member
// therefore re-joins every seed (voter) that it does not see alive, and in
// addition does a full state exchange (push/pull) with one seen-alive seed,
// in rotation. The second part matters because a heal can be one-sided: a
// node may already see the seed alive again through a peer while the seed
// still has the node as dead; the exchange makes the node learn that and
// refute it. A healed partition therefore merges within about one interval
// (at most one per seed). Cost: one push/pull per member per interval,
// spread over the seeds (500 members, 3 voters, 30 s: ~5.5 per second per
// voter, each carrying the member list). Seeds that are names, not IP
// addresses, are resolved each round.
//
// Dead node reclaim time (default 30 s). memberlist refuses a node that
// comes back under a known name with a different address until the old entry
// may be reclaimed; with the default of memberlist (0 = never), a GPU box
// re-provisioned with the same node ID on a new IP/port could not rejoin
// until every member forgot the old one. 30 s is longer than a detection
// cycle, so a live node cannot be hijacked by a name clash.
//
// Encryption. memberlist without a key is readable and forgeable by anyone
// who can reach the port (hashicorp/memberlist SECURITY.md), and GPU nodes
// sit on foreign networks, so a key (AES-GCM, 16, 24 or 32 bytes) is
// required unless Dev is set. Keys[0] is the primary (used to encrypt);
// all keys are accepted for decryption, which allows rotation: add the new
// key everywhere, make it primary everywhere, then remove the old one
// ([Member.SetKeys], or [Config.ReloadKeys] polled while running). The
// cluster label is authenticated data in every packet, so two clusters that
// share a key still cannot merge.
//
// Identity. The key is shared by every member, so it proves nothing about
// who a member is. With [Config.Sign] a member puts a token in its metadata
// binding its name and advertised address to its own credential; with
// [Config.VerifyPeer] (voters) an alive claim that fails the check is
// ignored by memberlist's AliveDelegate and never enters the view.
//
// Advertise address. With BindAddr 0.0.0.0 memberlist would pick "a private
// IP" of the host; on GPU hosts with docker0, IB/RoCE and management NICs
// that is a coin toss. [Config.Validate] therefore rejects an unspecified
// bind address without an explicit AdvertiseAddr unless Dev is set.
//
// # Concurrency
//
// memberlist calls delegates on its own goroutines, often while holding its
// node lock. The delegates here never block and never call back into
// memberlist: events go into a buffered channel ([Config.EventBuffer]); when
// it is full the OLDEST queued event is dropped (the newest state matters
// most; consumers should reconcile with [Member.Members] after a drop), the
// ringmesh_gossip_events_dropped_total counter is incremented and a
// rate-limited warning is logged.
package gossip
