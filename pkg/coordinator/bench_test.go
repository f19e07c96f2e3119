package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/bus/busserver"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/health"
	"github.com/ringmesh/ringmesh/pkg/registry"
)

// BenchmarkHeartbeatIngest pushes heartbeats of 200 simulated agents
// through JetStream into the coordinator's registry (schema validation,
// registry apply, KV flush, ack) and, in the same run, raw JetStream async
// publishes of the same message size into a plain stream. The figure that
// counts is ingest/raw.
//
//	go test ./pkg/coordinator -run '^$' -bench HeartbeatIngest -benchtime 20000x
func BenchmarkHeartbeatIngest(b *testing.B) {
	const agents = 200
	// Every heartbeat must reach the consumer to be counted, so the
	// per-subject history (60 by default, which trims a lagging node's
	// older heartbeats) is lifted above b.N/agents.
	c, err := coordinator.New(coordinator.Config{Name: "bench", Embedded: busserver.ServerConfig{Port: -1, StoreDir: b.TempDir()},
		Topology:   bus.Topology{EventHistory: int64(b.N/agents + 100)},
		Thresholds: registry.Thresholds{SuspectAfter: time.Hour, DeadAfter: 2 * time.Hour}}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-c.Started()
	nc, err := nats.Connect(c.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))

	msgs := make([][]byte, agents)
	subjects := make([]string, agents)
	sample := benchSample()
	for i := range msgs {
		node := fmt.Sprintf("vast-%d", i)
		subjects[i], _ = bus.EventSubject(node, bus.KindHeartbeat)
	}
	mk := func(i, seq int) []byte {
		node := fmt.Sprintf("vast-%d", i%agents)
		env, _ := bus.NewEnvelope("heartbeat", bus.MessageID(node, "bench", uint64(seq)), node, time.Now(),
			events.Heartbeat{Status: "healthy", Health: sample, IntervalSeconds: 5, BusConnected: true})
		data, _ := json.Marshal(env)
		return data
	}
	size := len(mk(0, 1))
	// Pre-build payloads so the timed part is bus + coordinator only.
	payloads := make([][]byte, b.N)
	for i := range payloads {
		payloads[i] = mk(i, i/agents+1)
	}
	base := c.Applied()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i, p := range payloads {
		if _, err := js.PublishAsync(subjects[i%agents], p, jetstream.WithMsgID(fmt.Sprintf("vast-%d:bench:%d", i%agents, i/agents+1)), jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	for c.Applied()-base < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	ingest := time.Since(start)
	b.StopTimer()

	// Raw JetStream async publish of the same size, same server, same run.
	if _, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	for i, p := range payloads {
		if _, err := js.PublishAsync(fmt.Sprintf("bench.raw.%d", i%agents), p, jetstream.WithMsgID(fmt.Sprintf("raw-%d", i)), jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	raw := time.Since(start)

	ingestRate := float64(b.N) / ingest.Seconds()
	rawRate := float64(b.N) / raw.Seconds()
	b.ReportMetric(ingestRate, "applied/s")
	b.ReportMetric(rawRate, "raw-publish/s")
	b.ReportMetric(ingestRate/rawRate, "ratio")
	b.ReportMetric(float64(size), "msg-bytes")
}

func benchSample() health.Sample {
	f := func(v float64) *float64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	n := 8
	s := health.Sample{Time: time.Now(), AgentVersion: "bench", CPUPercent: f(37.5), CPUCount: &n, Load1: f(3), Load5: f(2.5), Load15: f(2),
		MemTotalBytes: u(64 << 30), MemUsedBytes: u(20 << 30), MemAvailableBytes: u(40 << 30), UptimeSeconds: u(86400),
		Disks:    []health.Disk{{Path: "/workspace", TotalBytes: u(500 << 30), UsedBytes: u(200 << 30), FreeBytes: u(300 << 30), UsedPercent: f(40), FSType: "overlayfs"}},
		GPUProbe: "ok", Processes: []health.Process{}, Errors: []string{}}
	for i := 0; i < 2; i++ {
		s.GPUs = append(s.GPUs, health.GPU{Index: i, Name: "NVIDIA GeForce RTX 4090", UUID: fmt.Sprintf("GPU-%d", i), UtilizationPercent: f(97),
			MemoryTotalBytes: u(24 << 30), MemoryUsedBytes: u(20 << 30), TemperatureC: f(71), PowerWatts: f(410)})
	}
	return s
}
