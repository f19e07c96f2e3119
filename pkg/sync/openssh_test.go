package meshsync

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

func openSSHTarget(o *sshtest.OpenSSH, node string) Target {
	return Target{
		NodeID:    node,
		Endpoint:  Endpoint{Host: o.Host, Port: o.Port, User: o.User},
		KeyPath:   o.ClientKeyPath,
		HostKey:   HostKeyConfig{KnownHostsFile: o.KnownHostsPath},
		RemoteDir: filepath.Join(o.Dir, "store"),
	}
}

// TestOpenSSH runs the transports against the system's real sshd (skipped
// when sshd is not installed).
func TestOpenSSH(t *testing.T) {
	o := sshtest.StartOpenSSH(t)
	local := filepath.Join(t.TempDir(), "ckpt.pt")
	const size = 5<<20 + 17
	sum := writeRandom(t, local, size, 11)

	t.Run("sftp push", func(t *testing.T) {
		tr := NewSFTPTransport(SFTPOptions{})
		defer tr.Close()
		rc, err := pushFile(t, tr, openSSHTarget(o, "hetzner-cpu1"), local, "vast-1/checkpoint/ckpt.pt", "")
		if err != nil {
			t.Fatalf("push: %v\nsshd log:\n%s", err, o.Log())
		}
		if rc.SHA256 != sum || rc.Size != size {
			t.Fatalf("receipt %+v", rc)
		}
		if got := fileSHA(t, filepath.Join(o.Dir, "store/vast-1/checkpoint/ckpt.pt")); got != sum {
			t.Fatalf("remote sha %s", got)
		}
		// Verified in place with the remote sha256sum, nothing sent again.
		rc, err = pushFile(t, tr, openSSHTarget(o, "hetzner-cpu1"), local, "vast-1/checkpoint/ckpt.pt", sum)
		if err != nil || rc.BytesSent != 0 {
			t.Fatalf("second push %+v %v (want 0 bytes: remote sha256sum over exec)", rc, err)
		}
	})
	t.Run("sftp resume from truncated partial", func(t *testing.T) {
		content, err := os.ReadFile(local)
		if err != nil {
			t.Fatal(err)
		}
		partial := filepath.Join(o.Dir, "store/vast-1/resume/ckpt.pt"+PartialSuffix)
		if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(partial, content[:3<<20+5], 0o644); err != nil {
			t.Fatal(err)
		}
		tr := NewSFTPTransport(SFTPOptions{})
		defer tr.Close()
		rc, err := pushFile(t, tr, openSSHTarget(o, "hetzner-cpu1"), local, "vast-1/resume/ckpt.pt", sum)
		if err != nil {
			t.Fatal(err)
		}
		if rc.ResumedFrom != 3<<20+5 || rc.BytesSent != size-rc.ResumedFrom {
			t.Fatalf("receipt %+v, want resumed from the partial", rc)
		}
		if got := fileSHA(t, filepath.Join(o.Dir, "store/vast-1/resume/ckpt.pt")); got != sum {
			t.Fatalf("remote sha %s", got)
		}
	})
	t.Run("sftp host key checks", func(t *testing.T) {
		tr := NewSFTPTransport(SFTPOptions{})
		defer tr.Close()
		tg := openSSHTarget(o, "hetzner-cpu1")
		tg.HostKey = HostKeyConfig{Fingerprint: o.Fingerprint()}
		if _, err := pushFile(t, tr, tg, local, "vast-1/fp/ckpt.pt", sum); err != nil {
			t.Fatalf("fingerprint mode: %v", err)
		}
		tg.HostKey = HostKeyConfig{Fingerprint: "SHA256:" + strings.Repeat("x", 43)}
		if _, err := pushFile(t, tr, tg, local, "vast-1/fp2/ckpt.pt", sum); !errors.Is(err, ErrHostKeyMismatch) {
			t.Fatalf("wrong fingerprint: %v", err)
		}
		other, _ := sshtest.NewKeyPair()
		kh := filepath.Join(t.TempDir(), "kh")
		if err := sshtest.WriteKnownHosts(kh, o.Host, o.Port, other.Signer.PublicKey()); err != nil {
			t.Fatal(err)
		}
		tg.HostKey = HostKeyConfig{KnownHostsFile: kh}
		if _, err := pushFile(t, tr, tg, local, "vast-1/fp3/ckpt.pt", sum); !errors.Is(err, ErrHostKeyMismatch) {
			t.Fatalf("wrong known_hosts: %v", err)
		}
	})
	t.Run("sftp statvfs disk check", func(t *testing.T) {
		tr := NewSFTPTransport(SFTPOptions{})
		defer tr.Close()
		tg := openSSHTarget(o, "hetzner-cpu1")
		tg.MinFreeBytes = 1 << 62 // more than any disk has
		_, err := pushFile(t, tr, tg, local, "vast-1/full/ckpt.pt", sum)
		if !errors.Is(err, ErrTargetDiskFull) || !strings.Contains(err.Error(), "free") {
			t.Fatalf("err = %v, want ErrTargetDiskFull from the statvfs pre-check", err)
		}
	})
	t.Run("engine sync of a busy database", func(t *testing.T) {
		dir := t.TempDir()
		dbPath := filepath.Join(dir, "games", "g.db")
		if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
			t.Fatal(err)
		}
		w := startWriter(t, dbPath, "WAL")
		testutil.EventuallyTrue(t, 30*time.Second, "rows", func() bool { return w.rows.Load() > 200 })
		m, err := OpenManifest(filepath.Join(dir, "state", "m.db"), ManifestOptions{ReplicationTarget: 1,
			Sources: []Source{{Class: ClassDB, Root: filepath.Join(dir, "games")}}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		tr := NewSFTPTransport(SFTPOptions{})
		defer tr.Close()
		eng, err := NewEngine(EngineConfig{NodeID: "vast-1", Manifest: m, Transport: tr, StateDir: filepath.Join(dir, "state"),
			Targets: func() []Target { return []Target{openSSHTarget(o, "hetzner-cpu1")} }})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := eng.SyncNow(testCtx(t, time.Minute), nil)
		if err != nil || len(rep.Pushed) != 1 {
			t.Fatalf("%+v %v", rep, err)
		}
		checkSQLite(t, filepath.Join(o.Dir, "store/vast-1/db/g.db"))
	})
	t.Run("rsync", func(t *testing.T) {
		if err := RsyncAvailable(); err != nil {
			t.Skipf("rsync not installed locally: %v", err)
		}
		tr, err := NewRsyncTransport(RsyncOptions{TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		for _, hk := range []HostKeyConfig{{KnownHostsFile: o.KnownHostsPath}, {Fingerprint: o.Fingerprint()}} {
			tg := openSSHTarget(o, "hetzner-cpu1")
			tg.HostKey = hk
			tg.BandwidthLimit = 1 << 30
			rc, err := tr.Push(testCtx(t, time.Minute), LocalFile{Path: local, RemoteName: "vast-1/rsync/ckpt.pt"}, tg)
			if err != nil {
				t.Fatalf("rsync push (%+v): %v", hk, err)
			}
			if rc.SHA256 != sum || rc.Transport != "rsync" {
				t.Fatalf("receipt %+v", rc)
			}
		}
		if got := fileSHA(t, filepath.Join(o.Dir, "store/vast-1/rsync/ckpt.pt")); got != sum {
			t.Fatalf("remote sha %s", got)
		}
		tg := openSSHTarget(o, "hetzner-cpu1")
		tg.HostKey = HostKeyConfig{Fingerprint: "SHA256:" + strings.Repeat("x", 43)}
		if _, err := tr.Push(testCtx(t, time.Minute), LocalFile{Path: local, RemoteName: "vast-1/rsync2/ckpt.pt"}, tg); !errors.Is(err, ErrHostKeyMismatch) {
			t.Fatalf("wrong fingerprint: %v", err)
		}
		tg = openSSHTarget(o, "hetzner-cpu1")
		tg.KeyPath = ""
		tg.Signer = nil
		if _, err := tr.Push(testCtx(t, time.Minute), LocalFile{Path: local, RemoteName: "vast-1/rsync3/ckpt.pt"}, tg); !errors.Is(err, ErrTransportUnavailable) {
			t.Fatalf("no key file: %v", err)
		}
	})
}

func TestRsyncNeedsRsyncOnTarget(t *testing.T) {
	if err := RsyncAvailable(); err != nil {
		t.Skipf("rsync not installed locally: %v", err)
	}
	srv := sshtest.New(t, sshtest.Options{}) // serves SFTP and sha256sum, no rsync
	tr, err := NewRsyncTransport(RsyncOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "f")
	writeRandom(t, local, 1000, 12)
	tg := targetFor(srv, "hetzner-cpu1")
	tg.KeyPath = srv.ClientKeyPath
	tg.Signer = nil
	_, err = tr.Push(testCtx(t, time.Minute), LocalFile{Path: local, RemoteName: "n/f"}, tg)
	if !errors.Is(err, ErrTransportUnavailable) || !strings.Contains(err.Error(), "rsync not found on hetzner-cpu1") {
		t.Fatalf("err = %v, want rsync unavailable on the target", err)
	}
}
