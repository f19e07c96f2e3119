package meshsync

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// benchServer is an SSH target for benchmarks: the real sshd when
// installed (unless RINGMESH_BENCH_SERVER=inprocess), else the in-process
// server.
type benchServer struct {
	kind      string // "openssh" or "inprocess"
	target    Target
	remoteDir string // local path of target.RemoteDir
	openssh   *sshtest.OpenSSH
}

func newBenchServer(b *testing.B) *benchServer {
	b.Helper()
	if sshtest.FindSSHD() != "" && os.Getenv("RINGMESH_BENCH_SERVER") != "inprocess" {
		o := sshtest.StartOpenSSH(b)
		dir := filepath.Join(o.Dir, "store")
		return &benchServer{kind: "openssh", openssh: o, remoteDir: dir, target: Target{
			NodeID: "bench-target", Endpoint: Endpoint{Host: o.Host, Port: o.Port, User: o.User},
			KeyPath: o.ClientKeyPath, HostKey: HostKeyConfig{KnownHostsFile: o.KnownHostsPath}, RemoteDir: dir,
		}}
	}
	srv := sshtest.New(b, sshtest.Options{})
	tg := targetFor(srv, "bench-target")
	tg.KeyPath = srv.ClientKeyPath
	return &benchServer{kind: "inprocess", remoteDir: srv.LocalPath("/store"), target: tg}
}

// benchBytes is the size of the mixed data set: RINGMESH_BENCH_BYTES
// (plain bytes or with a K/M/G suffix), default 1 GiB.
func benchBytes(b *testing.B) int64 {
	v := os.Getenv("RINGMESH_BENCH_BYTES")
	if v == "" {
		return 1 << 30
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, strings.TrimSuffix(v, "G")
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, strings.TrimSuffix(v, "M")
	case strings.HasSuffix(v, "K"):
		mult, v = 1<<10, strings.TrimSuffix(v, "K")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("RINGMESH_BENCH_BYTES=%q: want a positive size like 1073741824, 256M or 1G", os.Getenv("RINGMESH_BENCH_BYTES"))
	}
	return n * mult
}

// mixedDataSet writes three large files holding 3/4 of total and 256 KiB
// files for the rest, all random (incompressible).
func mixedDataSet(b *testing.B, dir string, total int64) (files []string, bytes int64) {
	large := total * 3 / 4 / 3
	for i := 0; i < 3; i++ {
		p := filepath.Join(dir, "checkpoints", fmt.Sprintf("large-%d.pt", i))
		writeRandom(b, p, large, uint64(100+i))
		files = append(files, p)
		bytes += large
	}
	const small = 256 << 10
	for i := 0; bytes+small <= total; i++ {
		p := filepath.Join(dir, "games", fmt.Sprintf("d%02d", i%16), fmt.Sprintf("small-%04d.npz", i))
		writeRandom(b, p, small, uint64(1000+i))
		files = append(files, p)
		bytes += small
	}
	return files, bytes
}

// BenchmarkThroughputMixed pushes a mixed data set (default 1 GiB; set
// RINGMESH_BENCH_BYTES to scale it) over SSH on loopback with the SFTP
// transport, and with `rsync -a -e ssh` of the same set in the same run when
// rsync and sshd are installed. Skipped with -short.
func BenchmarkThroughputMixed(b *testing.B) {
	if testing.Short() {
		b.Skip("skipping the 1 GiB throughput benchmark in -short mode")
	}
	srv := newBenchServer(b)
	src := b.TempDir()
	files, total := mixedDataSet(b, src, benchBytes(b))
	b.Logf("data set: %d files, %s; server: %s", len(files), fmtBytes(total), srv.kind)

	b.Run("sftp/"+srv.kind, func(b *testing.B) {
		tr := NewSFTPTransport(SFTPOptions{})
		defer tr.Close()
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			for _, p := range files {
				rel, _ := filepath.Rel(src, p)
				if _, err := tr.Push(context.Background(), LocalFile{Path: p, RemoteName: fmt.Sprintf("run%d/%s", i, filepath.ToSlash(rel))}, srv.target); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = os.RemoveAll(filepath.Join(srv.remoteDir, fmt.Sprintf("run%d", i)))
			b.StartTimer()
		}
	})

	b.Run("rsync/"+srv.kind, func(b *testing.B) {
		if srv.openssh == nil {
			b.Skip("rsync comparison needs a real sshd")
		}
		if err := RsyncAvailable(); err != nil {
			b.Skipf("rsync not installed: %v", err)
		}
		o := srv.openssh
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(srv.remoteDir, fmt.Sprintf("rsync%d", i))
			cmd := exec.Command("rsync", "-a", "-e",
				fmt.Sprintf("ssh -p %d -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s",
					o.Port, o.ClientKeyPath, o.KnownHostsPath),
				src+"/", fmt.Sprintf("%s@%s:%s/", o.User, o.Host, dst))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("rsync: %v\n%s", err, out)
			}
			b.StopTimer()
			_ = os.RemoveAll(dst)
			b.StartTimer()
		}
	})
}

// BenchmarkManifestIncremental10k times a rescan of 10,000 unchanged files
// (stat only, nothing is hashed).
func BenchmarkManifestIncremental10k(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < 10000; i++ {
		p := filepath.Join(dir, "data", fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d.npz", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	m, err := OpenManifest(filepath.Join(dir, "state", "m.db"), ManifestOptions{
		Sources: []Source{{Class: ClassNPZ, Root: filepath.Join(dir, "data"), Globs: []string{"**/*.npz"}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if st, err := m.Scan(context.Background(), ScanOptions{}); err != nil || st.Hashed != 10000 {
		b.Fatalf("initial scan %+v %v", st, err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := m.Scan(context.Background(), ScanOptions{})
		if err != nil || st.Hashed != 0 || st.Files != 10000 {
			b.Fatalf("rescan %+v %v", st, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/10000, "µs/file")
}

// BenchmarkFlushFirstByte times Flush start to the first byte of the flush
// (the JSON manifest) leaving for the target: "idle" with a warm
// connection, "busy" while continuous sync is in the middle of a
// bandwidth-limited push that the flush has to stop first, and "cold" with
// no cached connection (SSH handshake included).
func BenchmarkFlushFirstByte(b *testing.B) {
	srv := newBenchServer(b)
	for _, mode := range []string{"idle", "busy", "cold"} {
		b.Run(mode+"/"+srv.kind, func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; i < 20; i++ {
				writeRandom(b, filepath.Join(dir, "ckpt", fmt.Sprintf("c%02d.pt", i)), 64<<10, uint64(i))
			}
			if mode == "busy" {
				writeRandom(b, filepath.Join(dir, "ckpt", "aaa-big.pt"), 64<<20, 77)
			}
			m, err := OpenManifest(filepath.Join(dir, "state", "m.db"), ManifestOptions{ReplicationTarget: 1,
				Sources: []Source{{Class: ClassCheckpoint, Root: filepath.Join(dir, "ckpt")}}})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			tg := srv.target
			tg.RemoteDir = filepath.Join(srv.target.RemoteDir, "flush-"+mode)
			if mode == "busy" {
				tg.BandwidthLimit = 8 << 20
			}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				tr := NewSFTPTransport(SFTPOptions{})
				eng, err := NewEngine(EngineConfig{NodeID: "bench-node", Manifest: m, Transport: tr, StateDir: filepath.Join(dir, "state"),
					Interval: time.Hour, Targets: func() []Target { return []Target{tg} }})
				if err != nil {
					b.Fatal(err)
				}
				if mode != "cold" {
					// warm the connection with the manifest document path
					if _, err := tr.Push(context.Background(), LocalFile{Path: filepath.Join(dir, "ckpt", "c00.pt"), RemoteName: "warm"}, tg); err != nil {
						b.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				runDone := make(chan struct{})
				if mode == "busy" {
					go func() { defer close(runDone); _ = eng.Run(ctx) }()
					deadline := time.Now().Add(30 * time.Second)
					for eng.Status().Progress.BytesSent < 1<<20 {
						if time.Now().After(deadline) {
							b.Fatal("continuous sync did not start")
						}
						time.Sleep(time.Millisecond)
					}
				} else {
					close(runDone)
				}
				b.StartTimer()
				res := eng.Flush(context.Background(), time.Now().Add(15*time.Second))
				b.StopTimer()
				if res.FirstByte.IsZero() {
					b.Fatalf("no byte sent: %+v", res)
				}
				total += res.FirstByte.Sub(res.Started)
				cancel()
				<-runDone
				_ = tr.Close()
				if err := m.ForgetTarget(tg.NodeID); err != nil {
					b.Fatal(err)
				}
				_ = os.RemoveAll(filepath.Join(srv.remoteDir, "flush-"+mode))
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-first-byte")
		})
	}
}

// BenchmarkDBDelta100MB pushes a ~100 MB SQLite database over SFTP after
// changing 1 % of its pages per cycle (rows rewritten in place, spread over
// the file), the way the engine does: the shadow copy brought up to date
// page by page, then a page delta verified by the target's sha256sum, and
// the same delta to a second copy verified as on a chrooted target without
// exec (only the written pages read back). The anchors, in the same run: a
// snapshot with the online backup API (a full local copy) and a full push
// of it. RINGMESH_BENCH_DB_ROWS overrides the row count (1000-byte rows).
func BenchmarkDBDelta100MB(b *testing.B) {
	srv := newBenchServer(b)
	rowsN := 100000
	if v := os.Getenv("RINGMESH_BENCH_DB_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("RINGMESH_BENCH_DB_ROWS=%q", v)
		}
		rowsN = n
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "games.db")
	db := createGameDB(b, src, rowsN)
	tr := NewSFTPTransport(SFTPOptions{DBStateDir: filepath.Join(dir, "dbdelta")})
	defer tr.Close()
	noExec := NewSFTPTransport(SFTPOptions{DBStateDir: filepath.Join(dir, "dbdelta-noexec"), ExecHashMinSize: 1 << 62})
	defer noExec.Close()
	ctx := context.Background()
	sh := newDBShadow(filepath.Join(dir, "snaps"), src)
	shadow := func() Snapshot {
		s, err := sh.snapshot(ctx, src)
		if err != nil {
			b.Fatal(err)
		}
		if s.Method != "pages" {
			b.Fatalf("shadow snapshot by %q", s.Method)
		}
		return s
	}
	backup := func() Snapshot {
		s, err := SnapshotSQLite(ctx, src, filepath.Join(dir, "backups"))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	push := func(t *SFTPTransport, s Snapshot, name string, pages bool) (Receipt, time.Duration) {
		lf := LocalFile{Path: s.Path, RemoteName: name, Size: s.Size, SHA256: s.SHA256}
		if pages {
			lf.Pages = s.Pages
		}
		start := time.Now()
		rc, err := t.Push(ctx, lf, srv.target)
		if err != nil {
			b.Fatal(err)
		}
		return rc, time.Since(start)
	}
	// Two full pushes fill <name> and its spare.
	for i := 0; i < 2; i++ {
		s := shadow()
		push(tr, s, "vast-1/games/games.db", true)
		push(noExec, s, "vast-1/noexec/games.db", true)
	}
	pages := shadow().Pages.Pages()
	change := max(pages/100, 1)
	buf := make([]byte, deltaRowBytes)
	var deltaBytes, fullBytes, size, written int64
	var deltaTime, noExecTime, fullTime, snapTime, backupTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		for k := 0; k < change; k++ {
			id := 1 + (k*rowsN/change+i*7)%rowsN
			buf[0], buf[1] = byte(i), byte(k)
			if _, err := tx.Exec("UPDATE games SET payload = ? WHERE id = ?", buf, id); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		st := time.Now()
		s := shadow()
		snapTime += time.Since(st)
		written += s.Written
		rc, d := push(tr, s, "vast-1/games/games.db", true)
		if !rc.Delta {
			b.Fatalf("cycle %d: not a delta: %+v", i, rc)
		}
		deltaBytes += rc.BytesSent
		deltaTime += d
		rn, dn := push(noExec, s, "vast-1/noexec/games.db", true)
		if !rn.Delta || rn.VerifiedBy != "written pages" {
			b.Fatalf("cycle %d without exec: %+v", i, rn)
		}
		noExecTime += dn
		st = time.Now()
		bk := backup()
		backupTime += time.Since(st)
		rf, fd := push(tr, bk, fmt.Sprintf("vast-1/full/games-%d.db", i), false)
		fullBytes += rf.BytesSent
		fullTime += fd
		size = s.Size
		os.Remove(bk.Path)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(size)/1e6, "db-MB")
	b.ReportMetric(float64(change)/float64(pages)*100, "pages-changed-%")
	b.ReportMetric(float64(deltaBytes)/n/1e6, "delta-MB/cycle")
	b.ReportMetric(float64(fullBytes)/n/1e6, "full-MB/cycle")
	b.ReportMetric(float64(deltaBytes)/float64(fullBytes)*100, "delta/full-%")
	b.ReportMetric(deltaTime.Seconds()/n, "delta-s/push")
	b.ReportMetric(noExecTime.Seconds()/n, "delta-noexec-s/push")
	b.ReportMetric(fullTime.Seconds()/n, "full-s/push")
	b.ReportMetric(snapTime.Seconds()/n, "shadow-snapshot-s")
	b.ReportMetric(float64(written)/n/1e6, "shadow-written-MB")
	b.ReportMetric(backupTime.Seconds()/n, "backup-snapshot-s")
	b.Logf("server %s: %d pages, %d changed per cycle", srv.kind, pages, change)
}
