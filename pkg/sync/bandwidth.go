package meshsync

import (
	"context"
	"hash"
	"io"
	"path"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ThrottleFunc observes the bandwidth limiter: n bytes to target nodeID had
// to wait wait before being sent (wait is the limiter's computed delay, 0
// when tokens were available).
type ThrottleFunc func(nodeID string, n int, wait time.Duration)

// limiters holds one token bucket per target node, shared by every transfer
// to that node, so a per-host limit holds whatever the concurrency.
type limiters struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// burstFor is the bucket size for a limit of bps bytes/second: 1/8 s worth,
// at least 64 KiB (one SFTP packet must always fit).
func burstFor(bps int64) int {
	b := bps / 8
	if b < 64<<10 {
		b = 64 << 10
	}
	if b > 64<<20 {
		b = 64 << 20
	}
	return int(b)
}

// get returns the limiter for nodeID at bps bytes/second (nil when bps <= 0),
// updating the rate if it changed.
func (l *limiters) get(nodeID string, bps int64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*rate.Limiter{}
	}
	lim := l.m[nodeID]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(bps), burstFor(bps))
		l.m[nodeID] = lim
		return lim
	}
	if lim.Limit() != rate.Limit(bps) {
		lim.SetLimit(rate.Limit(bps))
		lim.SetBurst(burstFor(bps))
	}
	return lim
}

// pushReader feeds an upload: it stops on ctx, waits for the bandwidth
// limiter, hashes what it hands out and reports progress.
type pushReader struct {
	ctx      context.Context
	r        io.Reader
	h        hash.Hash
	lim      *rate.Limiter
	onWait   ThrottleFunc
	nodeID   string
	progress func(int64)
	sent     int64
}

func (p *pushReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	if p.lim != nil && len(b) > p.lim.Burst() {
		b = b[:p.lim.Burst()]
	}
	n, err := p.r.Read(b)
	if n > 0 {
		p.h.Write(b[:n])
		if p.lim != nil {
			if werr := p.wait(n); werr != nil {
				return 0, werr
			}
		}
		p.sent += int64(n)
		if p.progress != nil {
			p.progress(p.sent)
		}
	}
	return n, err
}

func (p *pushReader) wait(n int) error {
	r := p.lim.ReserveN(time.Now(), n)
	if !r.OK() {
		// Cannot happen: reads are capped at the burst size.
		return nil
	}
	d := r.Delay()
	if p.onWait != nil {
		p.onWait(p.nodeID, n, d)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-p.ctx.Done():
		r.Cancel()
		return p.ctx.Err()
	}
}

// ResolveBandwidth turns the auto_sync settings into a per-host limit in
// bytes/second: the first matching host_bandwidth_overrides glob (path.Match
// syntax, e.g. "vast-*") wins, else defaultMBps. Figures are in MB/s
// (10^6 bytes/second), as in distributed_hosts.yaml; 0 or less = unlimited.
// Overrides are tried in sorted-key order so the result is deterministic.
func ResolveBandwidth(nodeID string, defaultMBps float64, overrides map[string]float64) int64 {
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	mbps := defaultMBps
	for _, k := range keys {
		if ok, _ := path.Match(k, nodeID); ok {
			mbps = overrides[k]
			break
		}
	}
	if mbps <= 0 {
		return 0
	}
	return int64(mbps * 1e6)
}
