package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream and bucket names (docs/ARCHITECTURE.md §3).
const (
	StreamEvents     = "MESH_EVT"
	StreamCommands   = "MESH_CMD"
	StreamAudit      = "MESH_AUDIT"
	StreamDeadLetter = "MESH_DLQ"
	BucketNodes      = "mesh_nodes"
	BucketLeader     = "mesh_leader"
	BucketState      = "mesh_state"
)

// Topology sets replicas and limits of the streams.
type Topology struct {
	// Replicas is 1 embedded, 3 clustered.
	Replicas int
	// EventMaxAge bounds MESH_EVT retention of the rare events (hello,
	// health, preempt, sync, bye, gossip); default 7 days. Heartbeats are
	// trimmed long before by EventHistory.
	EventMaxAge time.Duration
	// EventHistory is MESH_EVT's MaxMsgsPerSubject: the messages kept per
	// subject, that is per node and event kind (and per voter for gossip).
	// A node heartbeats once per interval, so heartbeats are kept for
	// EventHistory × interval (default 60: 5 min at 5 s); a node's hellos,
	// health changes, notices and byes are far rarer, so the last 60 of
	// each reach back days, up to EventMaxAge.
	EventHistory int64
	// Nodes is the fleet size MESH_EVT is sized for; default 1,000.
	Nodes int
	// HeartbeatBytes is the size of one stored heartbeat, bytes; default
	// 4 KiB (a heartbeat of a node with 8 GPUs and nvidia-smi's field
	// sizes is 2.9 KB as stored, see bench/scale; the rest is headroom).
	HeartbeatBytes int
	// EventMaxBytes bounds MESH_EVT size; default EventBudget(Nodes,
	// HeartbeatBytes, EventHistory), never less than 64 MiB.
	EventMaxBytes int64
	// DedupWindow is the Nats-Msg-Id de-duplication window of MESH_EVT;
	// default 10 min, longer than nats' 2 min so outbox drains after a
	// reconnect still de-duplicate.
	DedupWindow time.Duration
	// LeaderTTL is the lease TTL of mesh_leader; default 10 s.
	LeaderTTL time.Duration
}

func (t Topology) withDefaults() Topology {
	if t.Replicas == 0 {
		t.Replicas = 1
	}
	if t.EventMaxAge == 0 {
		t.EventMaxAge = 7 * 24 * time.Hour
	}
	if t.EventHistory == 0 {
		t.EventHistory = 60
	}
	if t.Nodes == 0 {
		t.Nodes = 1000
	}
	if t.HeartbeatBytes == 0 {
		t.HeartbeatBytes = 4 << 10
	}
	if t.EventMaxBytes == 0 {
		t.EventMaxBytes = EventBudget(t.Nodes, t.HeartbeatBytes, t.EventHistory)
	}
	if t.DedupWindow == 0 {
		t.DedupWindow = 10 * time.Minute
	}
	if t.LeaderTTL == 0 {
		t.LeaderTTL = 10 * time.Second
	}
	return t
}

// EventBudget is the MESH_EVT size, bytes, for nodes nodes whose stored
// heartbeats are heartbeatBytes each, history messages kept per subject:
// nodes × history × heartbeatBytes for the heartbeats, as much again for
// every other kind together (a hello is about the size of a heartbeat, the
// others are smaller and rarer), and 64 MiB for the gossip subjects and
// departed nodes' last messages. So the byte cap is not what trims
// heartbeats: the per-subject count is, and the rare events stay until
// EventMaxAge.
func EventBudget(nodes, heartbeatBytes int, history int64) int64 {
	return int64(nodes)*history*int64(heartbeatBytes)*2 + 64<<20
}

// StreamConfigs returns the stream definitions for t. Control-plane streams
// (commands, audit) are small and use file storage with per-write sync
// configured at the server (SyncAlways) in clustered mode.
func StreamConfigs(t Topology) []jetstream.StreamConfig {
	t = t.withDefaults()
	return []jetstream.StreamConfig{
		{Name: StreamEvents, Subjects: []string{EventsAll, GossipAll}, Storage: jetstream.FileStorage, Replicas: t.Replicas,
			MaxAge: t.EventMaxAge, MaxBytes: t.EventMaxBytes, MaxMsgsPerSubject: t.EventHistory,
			Duplicates: t.DedupWindow, Discard: jetstream.DiscardOld,
			Description: "agent events and gossip observations"},
		{Name: StreamCommands, Subjects: []string{CommandsAll}, Storage: jetstream.FileStorage, Replicas: t.Replicas,
			MaxAge: 24 * time.Hour, MaxBytes: 64 << 20, Duplicates: t.DedupWindow, Retention: jetstream.LimitsPolicy,
			Description: "work for agents, issued by the leader"},
		{Name: StreamAudit, Subjects: []string{AuditAll}, Storage: jetstream.FileStorage, Replicas: t.Replicas,
			MaxAge: 90 * 24 * time.Hour, MaxBytes: 256 << 20, Duplicates: t.DedupWindow,
			Description: "every decision, transition and provider call, with cause"},
		{Name: StreamDeadLetter, Subjects: []string{DeadLetterAll}, Storage: jetstream.FileStorage, Replicas: t.Replicas,
			MaxAge: 30 * 24 * time.Hour, MaxBytes: 64 << 20,
			Description: "messages terminated as invalid, with reason"},
	}
}

// EnsureStreams creates or updates every stream and bucket idempotently.
//
// In a cluster, every voter's coordinator runs this at the same time, and
// identical concurrent create proposals can go unanswered until the request
// times out. So each resource is looked up first (an existing stream is only
// updated when its limits differ; an existing bucket is left as it is), each
// attempt has a short timeout, and retries are spread with random jitter so
// the voters fall out of step. It returns when every resource exists or ctx
// ends.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	t = t.withDefaults()
	for _, sc := range StreamConfigs(t) {
		err := retry(ctx, func(ctx context.Context) error {
			if st, err := js.Stream(ctx, sc.Name); err == nil {
				if sameLimits(st.CachedInfo().Config, sc) {
					return nil
				}
				_, err = js.UpdateStream(ctx, sc)
				return err
			} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
				return err
			}
			_, err := js.CreateStream(ctx, sc)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return nil // another voter was first
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("bus: stream %s: %w", sc.Name, err)
		}
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: BucketNodes, Description: "merged node records", History: 5, Storage: jetstream.FileStorage, Replicas: t.Replicas},
		{Bucket: BucketLeader, Description: "leader lease", History: 1, TTL: t.LeaderTTL, Storage: jetstream.FileStorage, Replicas: t.Replicas},
		{Bucket: BucketState, Description: "coordinator state (cost, reconcile)", History: 1, Storage: jetstream.FileStorage, Replicas: t.Replicas},
	}
	for _, kc := range buckets {
		err := retry(ctx, func(ctx context.Context) error {
			if _, err := js.KeyValue(ctx, kc.Bucket); err == nil {
				return nil
			} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
				return err
			}
			_, err := js.CreateKeyValue(ctx, kc)
			if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("bus: bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// sameLimits reports whether an existing stream already has the wanted
// subjects, replicas and limits.
func sameLimits(have, want jetstream.StreamConfig) bool {
	if len(have.Subjects) != len(want.Subjects) {
		return false
	}
	for i := range want.Subjects {
		if have.Subjects[i] != want.Subjects[i] {
			return false
		}
	}
	return have.Replicas == want.Replicas && have.MaxAge == want.MaxAge && have.MaxBytes == want.MaxBytes &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject && have.Duplicates == want.Duplicates
}

// retry runs f with a 2 s per-attempt timeout and 0.2–1.2 s of jitter between attempts until it succeeds or ctx
// ends; it returns the last error.
func retry(ctx context.Context, f func(context.Context) error) error {
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = f(actx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(200*time.Millisecond + time.Duration(rand.Int64N(int64(time.Second)))):
		}
	}
}

// WaitJetStream polls until JetStream answers AccountInfo or ctx ends.
func WaitJetStream(ctx context.Context, js jetstream.JetStream) error {
	var last error
	for {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(ictx)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
