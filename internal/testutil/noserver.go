package testutil

import (
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// FreeAddr returns a loopback host:port that nothing listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// NotListening fails t if a TCP connection to any of addrs succeeds: after a
// command that must not start a server has returned, nothing of it may be
// left listening on the addresses it was given.
func NotListening(t testing.TB, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on %s", a)
		}
	}
}

// Tripwire is a TCP listener that counts the connections made to it: point a
// binary's NATS URL at it to prove it never dials out.
type Tripwire struct {
	l     net.Listener
	conns atomic.Int64
}

// NewTripwire listens on a loopback port until the test ends.
func NewTripwire(t testing.TB) *Tripwire {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tw := &Tripwire{l: l}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tw.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return tw
}

// Addr is the listener's host:port.
func (tw *Tripwire) Addr() string { return tw.l.Addr().String() }

// URL is nats://Addr().
func (tw *Tripwire) URL() string { return "nats://" + tw.Addr() }

// Conns is the number of connections accepted so far.
func (tw *Tripwire) Conns() int64 { return tw.conns.Load() }

// CaptureStdout runs f with os.Stdout redirected to a file and returns what f
// wrote. Tests that use it must not run in parallel.
func CaptureStdout(t testing.TB, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = tmp
	func() {
		defer func() { os.Stdout = old }()
		f()
	}()
	b, err := os.ReadFile(tmp.Name())
	tmp.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
