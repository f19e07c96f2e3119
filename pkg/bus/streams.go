package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream and bucket names (DESIGN §3).
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
	// EventMaxAge bounds MESH_EVT retention; default 7 days.
	EventMaxAge time.Duration
	// EventMaxBytes bounds MESH_EVT size; default 1 GiB.
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
	if t.EventMaxBytes == 0 {
		t.EventMaxBytes = 1 << 30
	}
	if t.DedupWindow == 0 {
		t.DedupWindow = 10 * time.Minute
	}
	if t.LeaderTTL == 0 {
		t.LeaderTTL = 10 * time.Second
	}
	return t
}

// StreamConfigs returns the stream definitions for t. Control-plane streams
// (commands, audit) are small and use file storage with per-write sync
// configured at the server (SyncAlways) in clustered mode.
func StreamConfigs(t Topology) []jetstream.StreamConfig {
	t = t.withDefaults()
	return []jetstream.StreamConfig{
		{Name: StreamEvents, Subjects: []string{EventsAll, GossipAll}, Storage: jetstream.FileStorage, Replicas: t.Replicas,
			MaxAge: t.EventMaxAge, MaxBytes: t.EventMaxBytes, Duplicates: t.DedupWindow, Discard: jetstream.DiscardOld,
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
// In a cluster that is still electing its JetStream meta leader, a request
// can go unanswered: each call is retried with a short per-attempt timeout
// until ctx ends.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology) error {
	t = t.withDefaults()
	for _, sc := range StreamConfigs(t) {
		if err := retry(ctx, func(ctx context.Context) error { _, err := js.CreateOrUpdateStream(ctx, sc); return err }); err != nil {
			return fmt.Errorf("bus: stream %s: %w", sc.Name, err)
		}
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: BucketNodes, Description: "merged node records", History: 5, Storage: jetstream.FileStorage, Replicas: t.Replicas},
		{Bucket: BucketLeader, Description: "leader lease", History: 1, TTL: t.LeaderTTL, Storage: jetstream.FileStorage, Replicas: t.Replicas},
		{Bucket: BucketState, Description: "coordinator state (cost, reconcile)", History: 1, Storage: jetstream.FileStorage, Replicas: t.Replicas},
	}
	for _, kc := range buckets {
		if err := retry(ctx, func(ctx context.Context) error { _, err := js.CreateOrUpdateKeyValue(ctx, kc); return err }); err != nil {
			return fmt.Errorf("bus: bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// retry runs f with a 5 s per-attempt timeout until it succeeds or ctx
// ends; it returns the last error.
func retry(ctx context.Context, f func(context.Context) error) error {
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = f(actx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
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
