package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ringmesh/ringmesh/pkg/bus"
)

// storedMsg is one message read back from a stream.
type storedMsg struct {
	Seq     uint64
	Subject string
	MsgID   string // Nats-Msg-Id header
	Data    []byte
}

// countMatching returns how many messages of stream match filter now.
func countMatching(ctx context.Context, js jetstream.JetStream, stream, filter string) (uint64, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// readStream reads every message of stream matching filter, in stream
// order, with an ordered consumer. It reads as many as the stream held
// when it started and fails if they do not all arrive in time.
func readStream(ctx context.Context, js jetstream.JetStream, stream, filter string) ([]storedMsg, error) {
	want, err := countMatching(ctx, js, stream, filter)
	if err != nil {
		return nil, fmt.Errorf("%s info: %w", stream, err)
	}
	if want == 0 {
		return nil, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("%s ordered consumer: %w", stream, err)
	}
	out := make([]storedMsg, 0, want)
	for uint64(len(out)) < want {
		if ctx.Err() != nil {
			return out, fmt.Errorf("read %d of %d messages of %s (%s): %w", len(out), want, stream, filter, ctx.Err())
		}
		batch, err := cons.Fetch(int(min(500, want-uint64(len(out)))), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			// the ordered consumer resets itself; retry until ctx ends
			if serr := sleep(ctx, 100*time.Millisecond); serr != nil {
				return out, fmt.Errorf("read %d of %d messages of %s (%s): %w (last: %v)", len(out), want, stream, filter, serr, err)
			}
			continue
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return out, err
			}
			out = append(out, storedMsg{Seq: md.Sequence.Stream, Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data()})
		}
	}
	return out, nil
}

// consumerDrained checks that a coordinator's durable consumer has
// nothing pending and nothing unacknowledged.
func consumerDrained(ctx context.Context, js jetstream.JetStream, coordinator string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := js.Consumer(cctx, bus.StreamEvents, "coord-"+coordinator)
	if err != nil {
		return fmt.Errorf("consumer coord-%s: %w", coordinator, err)
	}
	info, err := cons.Info(cctx)
	if err != nil {
		return fmt.Errorf("consumer coord-%s info: %w", coordinator, err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		return fmt.Errorf("consumer coord-%s: %d pending, %d awaiting ack, %d redelivered", coordinator, info.NumPending, info.NumAckPending, info.NumRedelivered)
	}
	return nil
}

// deadLetters counts the messages coordinators terminated as invalid.
func deadLetters(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(cctx, bus.StreamDeadLetter)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(cctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// busiestSubject returns the subject with the most messages in stored and
// how many it has.
func busiestSubject(stored []storedMsg) (string, int) {
	count := map[string]int{}
	var top string
	for _, m := range stored {
		count[m.Subject]++
		if count[m.Subject] > count[top] {
			top = m.Subject
		}
	}
	return top, count[top]
}

// eventTally compares the IDs agents published with what MESH_EVT holds.
type eventTally struct {
	Published  int // distinct IDs the agents queued
	Stored     int // distinct published IDs found in the stream
	Duplicated int // extra copies of an ID in the stream
	Lost       int // published, not in the stream
	Unexpected int // in the stream, never published
	lostIDs    []string
	dupIDs     []string
}

func tally(published []string, stored []storedMsg) eventTally {
	count := map[string]int{}
	for _, m := range stored {
		count[m.MsgID]++
	}
	t := eventTally{Published: len(published)}
	seen := map[string]bool{}
	for _, id := range published {
		seen[id] = true
		switch n := count[id]; {
		case n == 0:
			t.Lost++
			if len(t.lostIDs) < 5 {
				t.lostIDs = append(t.lostIDs, id)
			}
		default:
			t.Stored++
			if n > 1 {
				t.Duplicated += n - 1
				if len(t.dupIDs) < 5 {
					t.dupIDs = append(t.dupIDs, id)
				}
			}
		}
	}
	for id := range count {
		if !seen[id] {
			t.Unexpected++
		}
	}
	return t
}

func (t eventTally) check(c *checks) {
	if t.Lost > 0 {
		c.failf("%d of %d published events are not in %s (e.g. %v)", t.Lost, t.Published, bus.StreamEvents, t.lostIDs)
	}
	if t.Duplicated > 0 {
		c.failf("%d duplicate copies in %s (e.g. %v)", t.Duplicated, bus.StreamEvents, t.dupIDs)
	}
	if t.Unexpected > 0 {
		c.failf("%d events in %s that no agent published", t.Unexpected, bus.StreamEvents)
	}
}

func (t eventTally) figures(r *Result) {
	r.Add("published", t.Published)
	r.Add("stored", t.Stored)
	r.Add("duplicated", t.Duplicated)
	r.Add("lost", t.Lost)
}
