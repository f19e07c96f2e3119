package gossip

import (
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
)

// A crash is reported as suspect before it is reported failed, by every
// member, and the suspicion reaches members by the suspect report too.
func TestCrashIsSuspectBeforeFail(t *testing.T) {
	t.Parallel()
	a, b, c := cluster3(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b} {
		testutil.Eventually(t, 30*time.Second, func() error { return n.ev.has(EventFail, "c") })
		var order []EventType
		for _, ev := range n.ev.all() {
			if ev.Node == "c" && (ev.Type == EventSuspect || ev.Type == EventFail) {
				order = append(order, ev.Type)
			}
		}
		if len(order) < 2 || order[0] != EventSuspect {
			t.Errorf("%s: events for c %v, want suspect before fail (%s)", n.cfg.NodeName, order, n.ev.summary())
		}
	}
	if got := a.counter("ringmesh_gossip_events_total", "type", "suspect"); got < 1 {
		t.Errorf("events_total{suspect} = %v", got)
	}
}

// A suspect report from another member makes the node suspect here and is
// passed on; the node's next answered probe makes it alive again; a report
// about oneself, a repeated report and a malformed one change nothing.
func TestSuspectReportSpreadsAndClears(t *testing.T) {
	t.Parallel()
	a, b, c := cluster3(t)
	delegate{b.Member}.NotifyMsg(encodeMsg(msgSuspectReport, "c", 42))
	if err := b.sees(StateSuspect, "c"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error { return b.ev.has(EventSuspect, "c") })
	// Passed on through gossip to a, which did not probe c itself.
	testutil.Eventually(t, 20*time.Second, func() error { return a.ev.has(EventSuspect, "c") })
	// c is alive: b's next probe of it clears the suspicion.
	testutil.Eventually(t, 30*time.Second, func() error {
		if err := b.ev.has(EventAlive, "c"); err != nil {
			return err
		}
		return b.sees(StateAlive, "c")
	})
	before := b.ev.count(EventSuspect, "c")
	delegate{b.Member}.NotifyMsg(encodeMsg(msgSuspectReport, "c", 42)) // already seen
	delegate{b.Member}.NotifyMsg(encodeMsg(msgSuspectReport, "b", 7))  // about b itself
	delegate{b.Member}.NotifyMsg([]byte{msgSuspectReport, 1, 2})       // malformed
	delegate{b.Member}.NotifyMsg(encodeMsg(msgSuspectReport, "no.such", 9))
	if err := b.sees(StateAlive, "b", "c"); err != nil {
		t.Fatal(err)
	}
	if got := b.ev.count(EventSuspect, "c"); got != before {
		t.Errorf("a repeated report emitted again: %d suspect events, want %d", got, before)
	}
	if c.NumMembers() != 3 {
		t.Errorf("c sees %d members", c.NumMembers())
	}
}

// Without a verdict, a suspicion expires after memberlist's longest
// suspicion timeout (expireSuspects with a given time).
func TestSuspicionExpires(t *testing.T) {
	t.Parallel()
	a, _, _ := cluster3(t)
	a.mu.Lock()
	a.view["c"].State, a.view["c"].Since = StateSuspect, time.Now()
	a.mu.Unlock()
	hold := a.suspectHold(3)
	if hold <= a.probeInterval {
		t.Fatalf("hold %s", hold)
	}
	a.expireSuspects(time.Now().Add(hold / 2))
	if err := a.sees(StateSuspect, "c"); err != nil {
		t.Fatal(err)
	}
	a.expireSuspects(time.Now().Add(hold + time.Second))
	if err := a.sees(StateAlive, "c"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error { return a.ev.has(EventAlive, "c") })
}
