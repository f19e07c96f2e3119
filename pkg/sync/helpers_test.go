package meshsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// writeRandom writes n pseudo-random bytes (seeded) to path and returns their SHA-256.
func writeRandom(t testing.TB, path string, n int64, seed uint64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 7}))
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		k := int64(len(buf))
		if left < k {
			k = left
		}
		for i := 0; i < int(k); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < int(k); j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		h.Write(buf[:k])
		left -= k
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// targetFor builds a Target for an in-process server, verified via known_hosts.
func targetFor(srv *sshtest.Server, nodeID string) Target {
	return Target{
		NodeID:    nodeID,
		Endpoint:  Endpoint{Host: srv.Host, Port: srv.Port, User: srv.User},
		Signer:    srv.ClientKey.Signer,
		HostKey:   HostKeyConfig{KnownHostsFile: srv.KnownHostsPath},
		RemoteDir: "/store",
	}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
