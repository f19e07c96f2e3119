package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/bus"
	"github.com/ringmesh/ringmesh/schemas"
)

// testSeed is 1 unless CHAOS_SEED says otherwise (rerun a failure with it).
func testSeed(t *testing.T) uint64 {
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED: %v", err)
		}
		return n
	}
	return 1
}

// TestScenarios runs the short version of every scenario, one after the
// other (they load the machine; running them side by side would only
// make them slower and less predictable).
func TestScenarios(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d (CHAOS_SEED=%d to repeat)", seed, seed)
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			if s.Heavy != "" && testing.Short() {
				t.Skipf("skipped with -short: %s", s.Heavy)
			}
			log := zerolog.Nop()
			if os.Getenv("RINGMESH_TEST_LOG") != "" {
				log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Str("scenario", s.Name).Logger()
			}
			env := Env{Seed: seed, Log: log, Logf: t.Logf}
			res, err := RunScenario(context.Background(), s, env, t.TempDir())
			t.Log(res)
			if err != nil {
				t.Fatalf("%s (seed %d): %v", s.Name, seed, err)
			}
		})
	}
}

// The simulated agents' messages are what the coordinator accepts: they
// validate against schemas/ like the real agent's.
func TestSimAgentMessagesValidate(t *testing.T) {
	val, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for kind, body := range map[string]any{
		bus.KindHello:     helloBody("vast-chaos-01", "b1", time.Second),
		bus.KindHeartbeat: heartbeatBody(time.Second, true),
		bus.KindSync:      syncBody(42),
	} {
		env, err := bus.NewEnvelope(kind, bus.MessageID("vast-chaos-01", "b1", 1), "vast-chaos-01", time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(env)
		if err := val.Validate(kind, b); err != nil {
			t.Errorf("%s: %v\n%s", kind, err, b)
		}
	}
}

func TestSelect(t *testing.T) {
	all, err := Select("")
	if err != nil || len(all) != len(Scenarios()) {
		t.Fatalf("Select(\"\") = %d scenarios, %v", len(all), err)
	}
	two, err := Select("bus-cut, nats-bounce")
	if err != nil || len(two) != 2 || two[0].Name != "bus-cut" || two[1].Name != "nats-bounce" {
		t.Fatalf("Select two: %v %v", two, err)
	}
	if _, err := Select("nope"); err == nil {
		t.Fatal("Select(nope) did not fail")
	}
}

func TestSameSeedSameDraws(t *testing.T) {
	a, b := Env{Seed: 7}.Rand("x"), Env{Seed: 7}.Rand("x")
	c := Env{Seed: 7}.Rand("y")
	for i := 0; i < 10; i++ {
		if a.Uint64() != b.Uint64() {
			t.Fatal("same seed and stream, different draws")
		}
	}
	if (Env{Seed: 7}).Rand("x").Uint64() == c.Uint64() {
		t.Fatal("different streams drew the same first number")
	}
}

// The checkers catch what they are for: a lost, a duplicated and an
// unexpected event.
func TestTallyCatchesLossAndDuplicates(t *testing.T) {
	stored := []storedMsg{{Seq: 1, MsgID: "a"}, {Seq: 2, MsgID: "b"}, {Seq: 3, MsgID: "b"}, {Seq: 4, MsgID: "x"}}
	got := tally([]string{"a", "b", "c"}, stored)
	if got.Published != 3 || got.Stored != 2 || got.Lost != 1 || got.Duplicated != 1 || got.Unexpected != 1 {
		t.Fatalf("tally = %+v", got)
	}
	var ck checks
	got.check(&ck)
	if err := ck.err(); err == nil || len(ck.errs) != 3 {
		t.Fatalf("check reported %v", ck.errs)
	}
	var none checks
	tally([]string{"a"}, stored[:1]).check(&none)
	if none.err() != nil {
		t.Fatalf("clean tally reported %v", none.err())
	}
}

// A provider call is attributed to the request being asked at the time.
func TestWindowOf(t *testing.T) {
	t0 := time.Now()
	list := []decision{
		{ID: "r1", Sent: t0, Answered: t0.Add(time.Second)},
		{ID: "r2", Sent: t0.Add(2 * time.Second), Answered: t0.Add(3 * time.Second)},
	}
	if d, ok := windowOf(list, t0.Add(2500*time.Millisecond)); !ok || d.ID != "r2" {
		t.Fatalf("call in r2's window: %v %v", d.ID, ok)
	}
	if _, ok := windowOf(list, t0.Add(1500*time.Millisecond)); ok {
		t.Fatal("a call between requests was attributed")
	}
}

// busiestSubject finds the subject nearest the per-subject limit, so a run
// that outgrew it fails as inconclusive instead of reporting loss.
func TestBusiestSubject(t *testing.T) {
	stored := []storedMsg{{Subject: "a"}, {Subject: "b"}, {Subject: "b"}, {Subject: "c"}}
	if subj, n := busiestSubject(stored); subj != "b" || n != 2 {
		t.Fatalf("busiestSubject = %q, %d; want b, 2", subj, n)
	}
	if subj, n := busiestSubject(nil); subj != "" || n != 0 {
		t.Fatalf("busiestSubject(nil) = %q, %d", subj, n)
	}
}
