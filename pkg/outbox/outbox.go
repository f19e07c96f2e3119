// Package outbox is the agent's local, bounded, disk-backed queue of bus
// messages (docs/ARCHITECTURE.md §4 step 3). Every message the agent publishes goes through it,
// so nothing is lost while the bus is unreachable or across an agent
// restart: entries are removed only after JetStream acknowledged them, and
// they drain in order with the IDs they were given.
//
// Bounds: heartbeats are coalesced (a new heartbeat replaces any heartbeat
// still queued; only the latest matters). Other events are never dropped:
// when the queue holds MaxBytes, Put refuses new events with ErrFull so the
// caller can log it loudly, rather than silently discarding older ones.
package outbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrFull is returned by Put when a non-coalescable message does not fit.
var ErrFull = errors.New("outbox full")

var bucket = []byte("outbox")

// Message is one queued publish.
type Message struct {
	Subject string `json:"subject"`
	ID      string `json:"id"` // Nats-Msg-Id
	Data    []byte `json:"data"`
	// Coalesce marks a message of which only the latest matters (heartbeats).
	Coalesce bool `json:"coalesce,omitempty"`
	// Queued is when Put stored it.
	Queued time.Time `json:"queued"`
}

// Outbox is a bbolt-backed FIFO. It is safe for concurrent use.
type Outbox struct {
	db       *bolt.DB
	maxBytes int64

	mu     sync.Mutex
	bytes  int64
	count  int
	notify chan struct{}
}

// Open opens (or creates) the outbox file at path. maxBytes bounds the
// queued payload bytes (default 64 MiB when 0).
func Open(path string, maxBytes int64) (*Outbox, error) {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("outbox %s: %w (is another agent running with the same state directory?)", path, err)
	}
	o := &Outbox{db: db, maxBytes: maxBytes, notify: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			o.bytes += int64(len(v))
			o.count++
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox %s: %w", path, err)
	}
	return o, nil
}

// Close closes the file.
func (o *Outbox) Close() error { return o.db.Close() }

// Put appends m. A coalescing message replaces every coalescing message
// still queued. It returns ErrFull when a non-coalescing message would
// exceed the byte bound.
func (o *Outbox) Put(m Message) error {
	if m.Queued.IsZero() {
		m.Queued = time.Now().UTC()
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var freed int64
	var removed int
	err = o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if m.Coalesce {
			c := b.Cursor()
			for k, val := c.First(); k != nil; k, val = c.Next() {
				var old Message
				if json.Unmarshal(val, &old) == nil && old.Coalesce {
					freed += int64(len(val))
					removed++
					if err := c.Delete(); err != nil {
						return err
					}
				}
			}
		} else if o.bytes-freed+int64(len(v)) > o.maxBytes {
			return fmt.Errorf("%w: %d bytes queued, limit %d", ErrFull, o.bytes, o.maxBytes)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(key(seq), v)
	})
	if err != nil {
		return err
	}
	o.bytes += int64(len(v)) - freed
	o.count += 1 - removed
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return nil
}

// Len returns the number of queued messages and their stored size in bytes.
func (o *Outbox) Len() (count int, bytes int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count, o.bytes
}

// Oldest returns the oldest queued message and its key, or ok=false.
func (o *Outbox) Oldest() (k uint64, m Message, ok bool, err error) {
	err = o.db.View(func(tx *bolt.Tx) error {
		kb, v := tx.Bucket(bucket).Cursor().First()
		if kb == nil {
			return nil
		}
		ok = true
		k = binary.BigEndian.Uint64(kb)
		return json.Unmarshal(v, &m)
	})
	return k, m, ok, err
}

// Remove deletes the entry k (after its publish was acknowledged).
func (o *Outbox) Remove(k uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		v := b.Get(key(k))
		if v == nil {
			return nil
		}
		o.bytes -= int64(len(v))
		o.count--
		return b.Delete(key(k))
	})
}

// Publisher sends one message and returns once the bus acknowledged it.
type Publisher func(ctx context.Context, m Message) error

// Drain publishes queued messages in order until ctx ends, waiting for new
// ones when empty. A failed publish is retried with the same ID after a
// backoff (from 100 ms up to maxBackoff), so order is kept and JetStream
// de-duplication absorbs a publish whose ack was lost.
func (o *Outbox) Drain(ctx context.Context, publish Publisher, maxBackoff time.Duration) error {
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	backoff := 100 * time.Millisecond
	for {
		k, m, ok, err := o.Oldest()
		if err != nil {
			return fmt.Errorf("outbox read: %w", err)
		}
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-o.notify:
				continue
			}
		}
		if err := publish(ctx, m); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		if err := o.Remove(k); err != nil {
			return fmt.Errorf("outbox remove: %w", err)
		}
	}
}

// WaitEmpty blocks until the outbox is empty or ctx ends.
func (o *Outbox) WaitEmpty(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if n, _ := o.Len(); n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func key(seq uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, seq)
	return b
}
