package meshsync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

func pushFile(t *testing.T, tr Transport, tg Target, local, name, sha string) (Receipt, error) {
	t.Helper()
	return tr.Push(testCtx(t, 60*time.Second), LocalFile{Path: local, RemoteName: name, SHA256: sha}, tg)
}

func TestSFTPPushPlain(t *testing.T) {
	for _, exec := range []bool{true, false} {
		name := "exec-sha256sum"
		if !exec {
			name = "read-back"
		}
		t.Run(name, func(t *testing.T) {
			srv := sshtest.New(t, sshtest.Options{DisableExec: !exec})
			// Hash remotely from 1 MiB up (default 8 MiB) to exercise exec.
			tr := NewSFTPTransport(SFTPOptions{ExecHashMinSize: 1 << 20})
			defer tr.Close()
			local := filepath.Join(t.TempDir(), "ckpt.pt")
			sum := writeRandom(t, local, 3<<20+123, 1)

			rc, err := pushFile(t, tr, targetFor(srv, "hetzner-cpu1"), local, "vast-1/checkpoint/ckpt.pt", "")
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			if rc.SHA256 != sum || rc.Size != 3<<20+123 || rc.NodeID != "hetzner-cpu1" || rc.BytesSent != rc.Size || rc.ResumedFrom != 0 {
				t.Fatalf("receipt %+v, want sha %s", rc, sum)
			}
			if rc.RemotePath != "/store/vast-1/checkpoint/ckpt.pt" {
				t.Fatalf("remote path %q", rc.RemotePath)
			}
			if got := fileSHA(t, srv.LocalPath(rc.RemotePath)); got != sum {
				t.Fatalf("remote content sha %s, want %s", got, sum)
			}
			if _, err := os.Stat(srv.LocalPath(rc.RemotePath + PartialSuffix)); !os.IsNotExist(err) {
				t.Fatalf("partial left behind: %v", err)
			}
			usedExec := false
			for _, c := range srv.ExecCommands() {
				if strings.HasPrefix(c, "sha256sum") {
					usedExec = true
				}
			}
			if exec && !usedExec {
				t.Fatalf("exec sha256sum not used, commands %q", srv.ExecCommands())
			}
			if !exec && len(srv.ExecCommands()) > 1 {
				t.Fatalf("exec refused, yet retried: %q", srv.ExecCommands())
			}

			// Second push of the same content: verified in place and not sent
			// again when the target hashes remotely (a big file is not read
			// back just to avoid sending it).
			rc2, err := pushFile(t, tr, targetFor(srv, "hetzner-cpu1"), local, "vast-1/checkpoint/ckpt.pt", sum)
			if err != nil {
				t.Fatalf("second push: %v", err)
			}
			if want := map[bool]int64{true: 0, false: rc2.Size}[exec]; rc2.BytesSent != want {
				t.Fatalf("second push sent %d bytes, want %d", rc2.BytesSent, want)
			}
			if rc2.SHA256 != sum {
				t.Fatalf("second receipt sha %s", rc2.SHA256)
			}
			if srv.Connections() != 1 {
				t.Fatalf("connections = %d, want 1 (cached)", srv.Connections())
			}
		})
	}
}

func TestSFTPSmallFilesVerifiedByReadBack(t *testing.T) {
	srv := sshtest.New(t, sshtest.Options{})
	tr := NewSFTPTransport(SFTPOptions{}) // exec hashing from 8 MiB
	defer tr.Close()
	local := filepath.Join(t.TempDir(), "small.npz")
	sum := writeRandom(t, local, 256<<10, 13)
	if rc, err := pushFile(t, tr, targetFor(srv, "t"), local, "n/small.npz", ""); err != nil || rc.SHA256 != sum {
		t.Fatalf("push: %+v %v", rc, err)
	}
	if cmds := srv.ExecCommands(); len(cmds) != 0 {
		t.Fatalf("a 256 KiB file started remote processes %q; it should be read back", cmds)
	}
}

func TestSFTPResumeAfterCutConnection(t *testing.T) {
	srv := sshtest.New(t, sshtest.Options{})
	tr := NewSFTPTransport(SFTPOptions{})
	defer tr.Close()
	local := filepath.Join(t.TempDir(), "model.bin")
	const size = 8 << 20
	sum := writeRandom(t, local, size, 2)
	tg := targetFor(srv, "t1")

	srv.CutNextConnAfter(3 << 20)
	_, err := pushFile(t, tr, tg, local, "n/model.bin", sum)
	if err == nil {
		t.Fatal("push over a connection cut after 3 MiB succeeded")
	}
	if errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrTargetDiskFull) {
		t.Fatalf("wrong error class: %v", err)
	}
	if err := srv.WaitIdle(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	partial := srv.LocalPath("/store/n/model.bin" + PartialSuffix)
	fi, err := os.Stat(partial)
	if err != nil {
		t.Fatalf("no partial after cut: %v", err)
	}
	if fi.Size() <= 0 || fi.Size() >= size {
		t.Fatalf("partial size %d", fi.Size())
	}
	before := srv.BytesWritten()

	rc, err := pushFile(t, tr, tg, local, "n/model.bin", sum)
	if err != nil {
		t.Fatalf("resume push: %v", err)
	}
	if rc.ResumedFrom != fi.Size() {
		t.Fatalf("resumed from %d, want the partial's size %d", rc.ResumedFrom, fi.Size())
	}
	if rc.BytesSent != size-rc.ResumedFrom {
		t.Fatalf("sent %d, want %d", rc.BytesSent, size-rc.ResumedFrom)
	}
	if w := srv.BytesWritten() - before; w != size-fi.Size() {
		t.Fatalf("server wrote %d bytes on resume, want %d", w, size-fi.Size())
	}
	if got := fileSHA(t, srv.LocalPath("/store/n/model.bin")); got != sum || rc.SHA256 != sum {
		t.Fatalf("final sha %s / receipt %s, want %s", got, rc.SHA256, sum)
	}
}

func TestSFTPResumeInconsistentPartials(t *testing.T) {
	const size = 6 << 20
	local := filepath.Join(t.TempDir(), "f.bin")
	sum := writeRandom(t, local, size, 3)
	content, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	opts := SFTPOptions{} // window = 64 * 32 KiB = 2 MiB
	window := int64(2 << 20)
	cases := []struct {
		name       string
		partial    []byte
		wantResume int64
	}{
		{"truncated prefix", content[:1<<20+100], 1<<20 + 100},
		{"holes at the tail", append(append([]byte(nil), content[:3<<20]...), make([]byte, 256<<10)...),
			(3<<20 + 256<<10 - window) / (32 << 10) * (32 << 10)},
		{"garbage", make([]byte, 3<<20), 0},
		{"longer than the file", append(append([]byte(nil), content...), 1, 2, 3), 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := sshtest.New(t, sshtest.Options{DisableExec: i%2 == 1})
			tr := NewSFTPTransport(opts)
			defer tr.Close()
			p := srv.LocalPath("/store/x/f.bin" + PartialSuffix)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, tc.partial, 0o644); err != nil {
				t.Fatal(err)
			}
			rc, err := pushFile(t, tr, targetFor(srv, "t"), local, "x/f.bin", sum)
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			if rc.ResumedFrom != tc.wantResume {
				t.Fatalf("resumed from %d, want %d", rc.ResumedFrom, tc.wantResume)
			}
			if got := fileSHA(t, srv.LocalPath("/store/x/f.bin")); got != sum {
				t.Fatalf("final sha %s, want %s", got, sum)
			}
		})
	}
}

func TestSFTPChecksumMismatch(t *testing.T) {
	for _, exec := range []bool{true, false} {
		t.Run(map[bool]string{true: "exec", false: "read-back"}[exec], func(t *testing.T) {
			srv := sshtest.New(t, sshtest.Options{DisableExec: !exec})
			tr := NewSFTPTransport(SFTPOptions{})
			defer tr.Close()
			local := filepath.Join(t.TempDir(), "g.db")
			sum := writeRandom(t, local, 1<<20, 4)
			srv.CorruptNextFileAt(777_777)
			_, err := pushFile(t, tr, targetFor(srv, "t"), local, "n/g.db", sum)
			if !errors.Is(err, ErrChecksumMismatch) {
				t.Fatalf("err = %v, want ErrChecksumMismatch", err)
			}
			if _, err := os.Stat(srv.LocalPath("/store/n/g.db")); !os.IsNotExist(err) {
				t.Fatalf("corrupt copy was renamed into place (stat err %v)", err)
			}
			if _, err := os.Stat(srv.LocalPath("/store/n/g.db" + PartialSuffix)); !os.IsNotExist(err) {
				t.Fatalf("corrupt partial kept (stat err %v)", err)
			}
			rc, err := pushFile(t, tr, targetFor(srv, "t"), local, "n/g.db", sum)
			if err != nil || rc.SHA256 != sum {
				t.Fatalf("retry: %v %+v", err, rc)
			}
		})
	}
}

func TestSFTPTargetDiskFull(t *testing.T) {
	local := filepath.Join(t.TempDir(), "big.npz")
	sum := writeRandom(t, local, 4<<20, 5)

	t.Run("statvfs pre-check", func(t *testing.T) {
		srv := sshtest.New(t, sshtest.Options{})
		tr := NewSFTPTransport(SFTPOptions{})
		defer tr.Close()
		srv.SetFreeBytes(1 << 20)
		_, err := pushFile(t, tr, targetFor(srv, "hetzner-cpu2"), local, "n/big.npz", sum)
		if !errors.Is(err, ErrTargetDiskFull) {
			t.Fatalf("err = %v, want ErrTargetDiskFull", err)
		}
		for _, want := range []string{"hetzner-cpu2", "1.0 MiB free", "4.0 MiB needed"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if srv.BytesWritten() != 0 {
			t.Fatalf("%d bytes written despite the pre-check", srv.BytesWritten())
		}
	})
	t.Run("ENOSPC while writing", func(t *testing.T) {
		srv := sshtest.New(t, sshtest.Options{DisableStatVFS: true})
		tr := NewSFTPTransport(SFTPOptions{})
		defer tr.Close()
		srv.FailWritesAfter(1 << 20)
		_, err := pushFile(t, tr, targetFor(srv, "hetzner-cpu2"), local, "n/big.npz", sum)
		if !errors.Is(err, ErrTargetDiskFull) {
			t.Fatalf("err = %v, want ErrTargetDiskFull", err)
		}
		if !strings.Contains(err.Error(), "ran out of space") {
			t.Errorf("error %q is not clear about the disk", err)
		}
		if _, err := os.Stat(srv.LocalPath("/store/n/big.npz" + PartialSuffix)); !os.IsNotExist(err) {
			t.Fatalf("partial kept after disk full (stat err %v); it must be removed to give the space back", err)
		}
		srv.FailWritesAfter(-1)
		if _, err := pushFile(t, tr, targetFor(srv, "hetzner-cpu2"), local, "n/big.npz", sum); err != nil {
			t.Fatalf("push after space was freed: %v", err)
		}
	})
}

func TestSFTPHostKeyVerification(t *testing.T) {
	srv := sshtest.New(t, sshtest.Options{})
	other, err := sshtest.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wrongKH := filepath.Join(dir, "known_hosts_wrong")
	if err := sshtest.WriteKnownHosts(wrongKH, srv.Host, srv.Port, other.Signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	otherHostKH := filepath.Join(dir, "known_hosts_other_host")
	if err := sshtest.WriteKnownHosts(otherHostKH, "192.0.2.1", 22, srv.HostKey.Signer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	wrongFP := "SHA256:" + strings.Repeat("A", 43)
	local := filepath.Join(dir, "f")
	writeRandom(t, local, 1000, 6)

	cases := []struct {
		name    string
		hk      HostKeyConfig
		wantErr error
		mention string
	}{
		{"known_hosts ok", HostKeyConfig{KnownHostsFile: srv.KnownHostsPath}, nil, ""},
		{"fingerprint ok", HostKeyConfig{Fingerprint: srv.Fingerprint()}, nil, ""},
		{"fingerprint with type ok", HostKeyConfig{Fingerprint: "ssh-ed25519 " + srv.Fingerprint()}, nil, ""},
		{"fingerprint as ssh-keygen -l prints it", HostKeyConfig{Fingerprint: "256 " + srv.Fingerprint() + " root@vast (ED25519)"}, nil, ""},
		{"fingerprint of another key type", HostKeyConfig{Fingerprint: "ssh-rsa " + srv.Fingerprint()}, errAny, "handshake"},
		{"not a SHA256 fingerprint", HostKeyConfig{Fingerprint: "MD5:12:34"}, errAny, "SHA256:<base64>"},
		{"both ok", HostKeyConfig{KnownHostsFile: srv.KnownHostsPath, Fingerprint: srv.Fingerprint()}, nil, ""},
		// A known_hosts file is an allowlist: no fall-through to the fingerprint from the bus (issue 11).
		{"fingerprint ok, host unknown to known_hosts", HostKeyConfig{KnownHostsFile: otherHostKH, Fingerprint: srv.Fingerprint()}, ErrHostKeyUnknown, "no entry"},
		{"known_hosts wrong key", HostKeyConfig{KnownHostsFile: wrongKH}, ErrHostKeyMismatch, "known_hosts expects"},
		{"fingerprint wrong", HostKeyConfig{Fingerprint: wrongFP}, ErrHostKeyMismatch, "agent reported"},
		{"known_hosts ok but fingerprint wrong", HostKeyConfig{KnownHostsFile: srv.KnownHostsPath, Fingerprint: wrongFP}, ErrHostKeyMismatch, "agent reported"},
		{"known_hosts wrong, fingerprint ok", HostKeyConfig{KnownHostsFile: wrongKH, Fingerprint: srv.Fingerprint()}, ErrHostKeyMismatch, "known_hosts expects"},
		{"host not in known_hosts", HostKeyConfig{KnownHostsFile: otherHostKH}, ErrHostKeyUnknown, "no entry"},
		{"nothing configured", HostKeyConfig{}, ErrNoHostKeyPolicy, "known_hosts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewSFTPTransport(SFTPOptions{})
			defer tr.Close()
			tg := targetFor(srv, "lambda-gh200-1")
			tg.HostKey = tc.hk
			name := "n/" + strings.ReplaceAll(tc.name, " ", "_")
			_, err := pushFile(t, tr, tg, local, name, "")
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("push: %v", err)
				}
				return
			}
			if err == nil || (tc.wantErr != errAny && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), "lambda-gh200-1") {
				t.Fatalf("error %q should name the target and say %q", err, tc.mention)
			}
			if _, serr := os.Stat(srv.LocalPath("/store/" + name)); !os.IsNotExist(serr) {
				t.Fatalf("file written despite refused host key")
			}
		})
	}
}

// errAny marks a case that must fail without a specific sentinel.
var errAny = errors.New("any error")

func TestSFTPBandwidthLimit(t *testing.T) {
	srv := sshtest.New(t, sshtest.Options{})
	var mu sync.Mutex
	var bytes int64
	var wait time.Duration
	tr := NewSFTPTransport(SFTPOptions{OnThrottle: func(node string, n int, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if node != "slow" {
			t.Errorf("throttle for node %q", node)
		}
		bytes += int64(n)
		wait += d
	}})
	defer tr.Close()
	const size = 2 << 20
	const limit = 1 << 20 // bytes/second
	local := filepath.Join(t.TempDir(), "f")
	sum := writeRandom(t, local, size, 7)
	tg := targetFor(srv, "slow")
	tg.BandwidthLimit = limit
	start := time.Now()
	rc, err := pushFile(t, tr, tg, local, "n/f", sum)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if bytes != size || rc.BytesSent != size {
		t.Fatalf("limiter saw %d bytes, receipt says %d sent, want %d", bytes, rc.BytesSent, size)
	}
	// The bucket starts full (burstFor(limit) bytes); everything else has to
	// wait for tokens at `limit` bytes/second, so the transfer cannot end
	// sooner than minWait after it started, however fast or slow the machine.
	// The limiter's own waits make up whatever the transfer did not spend
	// otherwise (on a busy machine encryption and scheduling take part of
	// it), so they are only required to be there.
	minWait := time.Duration(float64(size-burstFor(limit)) / limit * float64(time.Second))
	if elapsed < minWait*9/10 {
		t.Fatalf("transfer took %v, limit implies at least ~%v", elapsed, minWait)
	}
	if wait <= 0 {
		t.Fatalf("limiter imposed no waiting (transfer took %v)", elapsed)
	}
	t.Logf("transfer took %v, of which %v waiting for the limiter (at least %v implied)", elapsed, wait, minWait)
}

func TestSFTPCancelKeepsPartial(t *testing.T) {
	srv := sshtest.New(t, sshtest.Options{})
	tr := NewSFTPTransport(SFTPOptions{})
	defer tr.Close()
	local := filepath.Join(t.TempDir(), "f")
	sum := writeRandom(t, local, 4<<20, 8)
	srv.SetWriteDelay(2 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	_, err := tr.Push(ctx, LocalFile{Path: local, RemoteName: "n/f", SHA256: sum, Progress: func(sent int64) {
		if sent > 1<<20 {
			once.Do(cancel)
		}
	}}, targetFor(srv, "t"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	srv.SetWriteDelay(0)
	fi, err := os.Stat(srv.LocalPath("/store/n/f" + PartialSuffix))
	if err != nil || fi.Size() == 0 {
		t.Fatalf("partial not kept after cancel: %v", err)
	}
	rc, err := pushFile(t, tr, targetFor(srv, "t"), local, "n/f", sum)
	if err != nil {
		t.Fatal(err)
	}
	if rc.ResumedFrom == 0 {
		t.Fatalf("did not resume after cancel")
	}
}
