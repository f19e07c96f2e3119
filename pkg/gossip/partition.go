package gossip

import (
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Partition is a switchboard for tests: every [PartitionTransport] made by
// one Partition consults it before sending, so that [Partition.Block] can
// cut the network between groups of members and [Partition.Heal] can
// restore it, without root or firewall rules. Addresses are the members'
// gossip addresses, "ip:port" (see [Member.Addr] and
// [PartitionTransport.Addr]).
//
// Blocking is enforced by the sender (packets are silently dropped, stream
// dials fail with an error, like a black-holed route) and, for packets, by
// the receiver too. Connections already open when Block is called are not
// cut; memberlist's streams are short-lived.
type Partition struct {
	mu      sync.RWMutex
	blocked map[string]map[string]bool // from -> to -> blocked
	dropped atomic.Int64
}

// NewPartition returns a Partition that blocks nothing.
func NewPartition() *Partition {
	return &Partition{blocked: make(map[string]map[string]bool)}
}

// Block cuts traffic in both directions between every address of groupA and
// every address of groupB. Blocks accumulate until Heal.
func (p *Partition) Block(groupA, groupB []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range groupA {
		for _, b := range groupB {
			a, b := canonAddr(a), canonAddr(b)
			p.set(a, b)
			p.set(b, a)
		}
	}
}

func (p *Partition) set(from, to string) {
	if p.blocked[from] == nil {
		p.blocked[from] = make(map[string]bool)
	}
	p.blocked[from][to] = true
}

// Heal removes all blocks.
func (p *Partition) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.blocked)
}

// Blocked reports whether traffic from one address to another is cut.
func (p *Partition) Blocked(from, to string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.blocked[canonAddr(from)][canonAddr(to)]
}

// Dropped returns how many packets and dials were blocked so far.
func (p *Partition) Dropped() int64 { return p.dropped.Load() }

// canonAddr normalises an "ip:port" address (e.g. IPv4-mapped IPv6) so
// that comparisons match memberlist's formatting; other strings are kept.
func canonAddr(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return s
}

// ErrPartitioned is returned by dials that a [Partition] blocks.
var ErrPartitioned = errors.New("gossip: partitioned (test partition)")

// PartitionTransport is a memberlist transport for tests: a real
// memberlist.NetTransport (UDP + TCP on one port) whose traffic to and from
// addresses blocked by its [Partition] is dropped. Pass it as
// [Config.Transport]; other packages' tests may use it too.
type PartitionTransport struct {
	inner    *memberlist.NetTransport
	part     *Partition
	self     atomic.Value // string: our advertised "ip:port"
	packetCh chan *memberlist.Packet
	closing  chan struct{} // Shutdown started: drain, do not forward
	done     chan struct{} // inner transport gone: stop pumping
	wg       sync.WaitGroup
	stopOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*PartitionTransport)(nil)

// NewTransport binds a NetTransport on bindAddr:bindPort (port 0: the
// kernel chooses) governed by p. logger may be nil (discard).
func (p *Partition) NewTransport(bindAddr string, bindPort int, logger *stdlog.Logger) (*PartitionTransport, error) {
	if logger == nil {
		logger = stdlog.New(io.Discard, "", 0)
	}
	nt, err := newNetTransport(bindAddr, bindPort, logger)
	if err != nil {
		return nil, err
	}
	t := &PartitionTransport{
		inner:    nt,
		part:     p,
		packetCh: make(chan *memberlist.Packet),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	ip := net.ParseIP(bindAddr)
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	t.self.Store(canonAddr(net.JoinHostPort(ip.String(), fmt.Sprint(nt.GetAutoBindPort()))))
	t.wg.Add(1)
	go t.pump()
	return t, nil
}

// Addr returns the transport's address, "ip:port" (the advertised one once
// memberlist has asked for it).
func (t *PartitionTransport) Addr() string { return t.self.Load().(string) }

// Block is shorthand for the shared Partition's Block.
func (t *PartitionTransport) Block(groupA, groupB []string) { t.part.Block(groupA, groupB) }

// Heal is shorthand for the shared Partition's Heal.
func (t *PartitionTransport) Heal() { t.part.Heal() }

// pump forwards inbound packets, dropping those from blocked senders.
func (t *PartitionTransport) pump() {
	defer t.wg.Done()
	for {
		select {
		case pkt := <-t.inner.PacketCh():
			if pkt.From != nil && t.part.Blocked(pkt.From.String(), t.Addr()) {
				t.part.dropped.Add(1)
				continue
			}
			select {
			case t.packetCh <- pkt:
			case <-t.closing:
			}
		case <-t.done:
			return
		}
	}
}

// FinalAdvertiseAddr implements memberlist.Transport and remembers the
// result as this transport's address.
func (t *PartitionTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	a, p, err := t.inner.FinalAdvertiseAddr(ip, port)
	if err == nil {
		t.self.Store(canonAddr(net.JoinHostPort(a.String(), fmt.Sprint(p))))
	}
	return a, p, err
}

// WriteTo implements memberlist.Transport.
func (t *PartitionTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport; packets to a
// blocked address are dropped silently, as a network would.
func (t *PartitionTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.part.Blocked(t.Addr(), a.Addr) {
		t.part.dropped.Add(1)
		return time.Now(), nil
	}
	return t.inner.WriteToAddress(b, a)
}

// PacketCh implements memberlist.Transport.
func (t *PartitionTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *PartitionTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport; dials to a
// blocked address fail with ErrPartitioned.
func (t *PartitionTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.part.Blocked(t.Addr(), a.Addr) {
		t.part.dropped.Add(1)
		return nil, fmt.Errorf("dial %s: %w", a.Addr, ErrPartitioned)
	}
	return t.inner.DialAddressTimeout(a, timeout)
}

// StreamCh implements memberlist.Transport. Inbound streams are not
// filtered (their source port is ephemeral); the sender's check covers
// them.
func (t *PartitionTransport) StreamCh() <-chan net.Conn { return t.inner.StreamCh() }

// Shutdown implements memberlist.Transport.
func (t *PartitionTransport) Shutdown() error {
	var err error
	t.stopOnce.Do(func() {
		// The inner listener may be blocked handing us a packet: keep
		// draining (without forwarding) until it is gone, then stop.
		close(t.closing)
		err = t.inner.Shutdown()
		close(t.done)
		t.wg.Wait()
	})
	return err
}
