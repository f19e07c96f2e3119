package schemas

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/pkg/events"
	"github.com/ringmesh/ringmesh/pkg/health"
)

func envelope(t *testing.T, kind string, body any) []byte {
	t.Helper()
	env, err := bus.NewEnvelope(kind, bus.MessageID("vast-1", "b1", 1), "vast-1", time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateAcceptsRealMessages(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	// A heartbeat with unknown (null) health values and no GPUs must pass.
	hb := events.Heartbeat{Status: "healthy", IntervalSeconds: 5, Health: health.Sample{Time: time.Now(), Disks: []health.Disk{}, GPUs: []health.GPU{}, Processes: []health.Process{}, Errors: []string{}}}
	if err := v.Validate("heartbeat", envelope(t, "heartbeat", hb)); err != nil {
		t.Fatalf("valid heartbeat rejected: %v", err)
	}
	pre := events.Preempt{Source: "signal:SIGTERM", Deadline: time.Now().Add(15 * time.Second), NoticeSeconds: 15}
	if err := v.Validate("preempt", envelope(t, "preempt", pre)); err != nil {
		t.Fatalf("valid preempt rejected: %v", err)
	}
}

func TestValidateRejectsWithReason(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		kind, raw, want string
	}{
		"not json":      {"hello", `{"schema":`, "not JSON"},
		"missing body":  {"bye", `{"schema":"mesh.v1.bye","id":"a:b:1","node":"n1","ts":"2026-11-29T14:00:00Z"}`, "body"},
		"bad node":      {"bye", `{"schema":"mesh.v1.bye","id":"a:b:1","node":"bad node!","ts":"2026-11-29T14:00:00Z","body":{"reason":"x"}}`, "/node"},
		"wrong type":    {"heartbeat", `{"schema":"mesh.v1.heartbeat","id":"a:b:1","node":"n1","ts":"2026-11-29T14:00:00Z","body":{"status":"healthy","interval_seconds":"five"}}`, "/body"},
		"wrong schema":  {"bye", `{"schema":"mesh.v1.hello","id":"a:b:1","node":"n1","ts":"2026-11-29T14:00:00Z","body":{"reason":"x"}}`, "/schema"},
		"bad timestamp": {"bye", `{"schema":"mesh.v1.bye","id":"a:b:1","node":"n1","ts":"yesterday","body":{"reason":"x"}}`, "/ts"},
		"unknown kind":  {"nope", `{}`, "no schema"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := v.Validate(c.kind, []byte(c.raw))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}
