package outbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestOrderCoalescePersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ob.db")
	o, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	put := func(id string, hb bool) {
		t.Helper()
		if err := o.Put(Message{Subject: "s", ID: id, Data: []byte(id), Coalesce: hb}); err != nil {
			t.Fatal(err)
		}
	}
	put("hello", false)
	put("hb1", true)
	put("sync1", false)
	put("hb2", true) // replaces hb1
	put("sync2", false)
	if n, _ := o.Len(); n != 4 {
		t.Fatalf("len = %d, want 4", n)
	}
	o.Close()

	o, err = Open(path, 0) // survives a restart
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var got []string
	var mu sync.Mutex
	fails := 2
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- o.Drain(ctx, func(_ context.Context, m Message) error {
			mu.Lock()
			defer mu.Unlock()
			if m.ID == "sync1" && fails > 0 { // bus down: retried with the same ID, order kept
				fails--
				return errors.New("disconnected")
			}
			got = append(got, m.ID)
			return nil
		}, 10*time.Millisecond)
	}()
	if err := o.WaitEmpty(withTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "[hello sync1 hb2 sync2]"
	if fmt.Sprint(got) != want {
		t.Fatalf("drained %v, want %s", got, want)
	}
}

func TestFullRefusesEventsButCoalescesHeartbeats(t *testing.T) {
	o, err := Open(filepath.Join(t.TempDir(), "ob.db"), 600)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	big := make([]byte, 200)
	if err := o.Put(Message{ID: "e1", Data: big}); err != nil {
		t.Fatal(err)
	}
	if err := o.Put(Message{ID: "e2", Data: big}); !errors.Is(err, ErrFull) {
		t.Fatalf("second big event: err = %v, want ErrFull", err)
	}
	for i := 0; i < 10; i++ { // heartbeats never grow the queue
		if err := o.Put(Message{ID: fmt.Sprint("hb", i), Data: []byte("x"), Coalesce: true}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := o.Len(); n != 2 {
		t.Fatalf("len = %d, want 2 (one event, one heartbeat)", n)
	}
	_, m, ok, err := o.Oldest()
	if err != nil || !ok || m.ID != "e1" {
		t.Fatalf("oldest = %v %v %v: the stored event must never be dropped", m.ID, ok, err)
	}
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
