package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/coordinator"
)

// coord is one in-process coordinator.
type coord struct {
	name   string
	c      *coordinator.Coordinator
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startCoord runs a coordinator and waits until it consumes and serves.
func startCoord(ctx context.Context, cfg coordinator.Config, log zerolog.Logger, wait time.Duration) (*coord, error) {
	c, err := coordinator.New(cfg, log)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	h := &coord{name: cfg.Name, c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- c.Run(rctx) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.Started():
		return h, nil
	case err := <-h.done:
		cancel()
		return nil, fmt.Errorf("coordinator %s: %w", cfg.Name, err)
	case <-t.C:
		h.stop()
		return nil, fmt.Errorf("coordinator %s did not start within %s", cfg.Name, wait)
	case <-ctx.Done():
		h.stop()
		return nil, ctx.Err()
	}
}

// stop ends Run and waits for it (bounded).
func (h *coord) stop() error {
	h.once.Do(func() {
		h.cancel()
		select {
		case h.err = <-h.done:
		case <-time.After(30 * time.Second):
			h.err = fmt.Errorf("coordinator %s did not stop within 30s", h.name)
		}
	})
	return h.err
}

// startCoords starts several coordinators at once (a cluster forms only
// when its members start together) and stops the started ones on failure.
func startCoords(ctx context.Context, cfgs []coordinator.Config, log zerolog.Logger, wait time.Duration) ([]*coord, error) {
	out := make([]*coord, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = startCoord(ctx, cfg, log.With().Str("coordinator", cfg.Name).Logger(), wait)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, h := range out {
				if h != nil {
					_ = h.stop()
				}
			}
			return nil, err
		}
	}
	return out, nil
}

// leaderWatch samples IsLeader of in-process coordinators in tight sweeps:
// it counts leader changes and sweeps that saw two leaders at once (a sweep
// slower than maxSweep is discarded: leadership may have moved during it).
type leaderWatch struct {
	mu         sync.Mutex
	current    string
	changes    int // leader changes after the first leader
	overlaps   int // sweeps with two or more leaders
	overlapMsg string
	leaderless time.Duration // longest time without any leader after the first
	lastLeader time.Time
	stopc      chan struct{}
	done       chan struct{}
	once       sync.Once
}

func watchLeaders(cs []*coord) *leaderWatch {
	w := &leaderWatch{stopc: make(chan struct{}), done: make(chan struct{})}
	const maxSweep = 10 * time.Millisecond
	go func() {
		defer close(w.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stopc:
				return
			case <-t.C:
			}
			start := time.Now()
			var leaders []string
			for _, c := range cs {
				if c.c.IsLeader() {
					leaders = append(leaders, c.name)
				}
			}
			if time.Since(start) > maxSweep {
				continue
			}
			w.mu.Lock()
			switch {
			case len(leaders) > 1:
				w.overlaps++
				w.overlapMsg = fmt.Sprintf("%v at %s", leaders, start.Format(time.RFC3339Nano))
			case len(leaders) == 1:
				if w.current != "" && w.current != leaders[0] {
					w.changes++
				}
				w.current = leaders[0]
				w.lastLeader = start
			default:
				if !w.lastLeader.IsZero() {
					w.leaderless = max(w.leaderless, start.Sub(w.lastLeader))
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *leaderWatch) stop() {
	w.once.Do(func() {
		close(w.stopc)
		<-w.done
	})
}

func (w *leaderWatch) figures() (current string, changes, overlaps int, leaderless time.Duration, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current, w.changes, w.overlaps, w.leaderless, w.overlapMsg
}

// leaderOf returns the one coordinator that reports IsLeader.
func leaderOf(cs []*coord) (*coord, error) {
	var l *coord
	n := 0
	for _, c := range cs {
		if c.c.IsLeader() {
			l = c
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%d coordinators report being the leader", n)
	}
	return l, nil
}
