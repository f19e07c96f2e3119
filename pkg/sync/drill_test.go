package meshsync

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

// drillParams size one preemption drill.
type drillParams struct {
	interval    time.Duration // continuous sync interval
	run         time.Duration // writing before SIGTERM
	notice      time.Duration // flush deadline after SIGTERM
	initialNPZ  int
	npzSize     int64
	npzEvery    time.Duration
	ckptSize    int64
	ckptEvery   time.Duration
	dbs         int
	rowsPerSec  int
	bandwidthBs int64 // per target, 0 = unlimited
	cpuHogs     int   // busy-loop processes during the drill
}

// drillTarget is one receiver: its Target and where its files land locally.
type drillTarget struct {
	t     Target
	local func(remote string) string
}

func drillTargets(t *testing.T) ([]drillTarget, string) {
	if sshtest.FindSSHD() != "" {
		var out []drillTarget
		for _, n := range []string{"hetzner-cpu1", "hetzner-cpu2"} {
			o := sshtest.StartOpenSSH(t)
			tg := openSSHTarget(o, n)
			out = append(out, drillTarget{t: tg, local: func(r string) string { return r }})
		}
		return out, "OpenSSH sshd"
	}
	var out []drillTarget
	for _, n := range []string{"hetzner-cpu1", "hetzner-cpu2"} {
		srv := sshtest.New(t, sshtest.Options{})
		out = append(out, drillTarget{t: targetFor(srv, n), local: srv.LocalPath})
	}
	return out, "in-process SFTP server (sshd not installed)"
}

// drillHogEnv holds the parent's pid in a CPU hog started by
// startCPUHogs: the test binary then spins (see init) instead of running
// tests, and exits as soon as its parent is gone.
const drillHogEnv = "RINGMESH_DRILL_HOG_PARENT"

var drillHogSink uint64

func init() {
	v := os.Getenv(drillHogEnv)
	if v == "" {
		return
	}
	parent, err := strconv.Atoi(v)
	if err != nil {
		os.Exit(2)
	}
	// Spin; a bound in case the parent's pid is reused.
	end := time.Now().Add(time.Hour)
	x := uint64(1)
	for os.Getppid() == parent && time.Now().Before(end) {
		for i := 0; i < 1<<22; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	drillHogSink = x
	os.Exit(0)
}

// startCPUHogs starts n busy-loop processes (this test binary re-executed
// with drillHogEnv set) and returns a function that kills and reaps them.
// Processes rather than goroutines: they compete for the cores through the
// kernel's scheduler, as a training job or a neighbour on the node would,
// and load sshd and the writers as much as the engine, instead of taking
// the Go scheduler's slots from the engine alone.
func startCPUHogs(t *testing.T, n int) func() {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	stop := func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
		cmds = nil
	}
	t.Cleanup(stop)
	for i := 0; i < n; i++ {
		c := exec.Command(exe, "-test.run=^$")
		c.Env = append(os.Environ(), drillHogEnv+"="+strconv.Itoa(os.Getpid()), "GOMAXPROCS=1")
		if err := c.Start(); err != nil {
			t.Fatalf("CPU hog: %v", err)
		}
		cmds = append(cmds, c)
	}
	return stop
}

// loadAvg is the first three fields of /proc/loadavg ("" where there is none).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// TestPreemptionDrill runs the preemption drill end to end on loopback:
// an ephemeral node's engine with two targets behind SSH (the system's
// sshd when installed), NPZ files and checkpoints arriving all the time,
// SQLite databases written at a steady row rate, continuous sync, then
// SIGTERM: writers stop and the flush runs until the notice ends. It then
// checks every file against what the targets really hold and prints bytes
// lost older / newer than the sync interval, what was older than the
// interval and not yet sent at SIGTERM, copies per file, and reported vs
// real misses. The flush must report exactly: nothing reported as made
// that no target holds, nothing reported missed that a target holds.
//
// Sizes and modes, by environment:
//
//   - default (CI): 20 + ~16 NPZ of 64 KiB, 512 KiB checkpoints each
//     second, one database, 1 s interval, 4 s of writing, 3 s notice.
//   - RINGMESH_DRILL_FULL=1: the sizes (400 + 60 NPZ of 256 KiB,
//     30 MiB checkpoints every 10 s, three databases at 20 rows/s, 5 s
//     interval, 60 s of writing, the 15 s notice less the 1.5 s goodbye).
//     Any byte older than the interval lost at SIGTERM fails the drill.
//   - RINGMESH_DRILL_BW=B: B bytes/s per target (8 MB/s: 8000000).
//   - RINGMESH_DRILL_CPU=N: N busy-loop processes (this test binary
//     re-executed) spin on the CPUs from before the first file is written
//     until the flush ends.
//
// The full-size runs recorded in BENCHMARKS.md:
//
//	RINGMESH_DRILL_FULL=1 timeout 900 go test -run '^TestPreemptionDrill$' -count=1 -v ./pkg/sync/
//	RINGMESH_DRILL_FULL=1 RINGMESH_DRILL_CPU=2 timeout 900 go test -run '^TestPreemptionDrill$' -count=1 -v ./pkg/sync/
//	RINGMESH_DRILL_FULL=1 RINGMESH_DRILL_BW=8000000 timeout 900 go test -run '^TestPreemptionDrill$' -count=1 -v ./pkg/sync/
//
// SIGTERM → preempt in the registry is not part of this drill (this
// package has no coordinator); BenchmarkPreemptNotice in pkg/coordinator
// measures it with the real agent.
func TestPreemptionDrill(t *testing.T) {
	p := drillParams{interval: time.Second, run: 4 * time.Second, notice: 3 * time.Second, initialNPZ: 20, npzSize: 64 << 10,
		npzEvery: 250 * time.Millisecond, ckptSize: 512 << 10, ckptEvery: time.Second, dbs: 1, rowsPerSec: 20}
	full := os.Getenv("RINGMESH_DRILL_FULL") != ""
	if full {
		p = drillParams{interval: 5 * time.Second, run: 60 * time.Second, notice: 15*time.Second - 1500*time.Millisecond, initialNPZ: 400,
			npzSize: 256 << 10, npzEvery: time.Second, ckptSize: 30 << 20, ckptEvery: 10 * time.Second, dbs: 3, rowsPerSec: 20}
	}
	if v := os.Getenv("RINGMESH_DRILL_BW"); v != "" {
		bw, err := strconv.ParseInt(v, 10, 64)
		if err != nil || bw < 0 {
			t.Fatalf("RINGMESH_DRILL_BW=%q: want bytes per second (%v)", v, err)
		}
		p.bandwidthBs = bw
	}
	if v := os.Getenv("RINGMESH_DRILL_CPU"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 64 {
			t.Fatalf("RINGMESH_DRILL_CPU=%q: want a number of busy-loop processes, 0 to 64 (%v)", v, err)
		}
		p.cpuHogs = n
	}
	targets, kind := drillTargets(t)
	f := newEngineFixture(t, 2)
	var ts []Target
	for _, d := range targets {
		d.t.BandwidthLimit = p.bandwidthBs
		ts = append(ts, d.t)
	}
	tr := NewSFTPTransport(SFTPOptions{})
	defer tr.Close()
	e, err := NewEngine(EngineConfig{NodeID: "vast-1", Manifest: f.m, Transport: tr, StateDir: t.TempDir(), Interval: p.interval,
		Targets: func() []Target { return ts }})
	if err != nil {
		t.Fatal(err)
	}
	loadStart := loadAvg()
	stopHogs := func() {}
	if p.cpuHogs > 0 {
		stopHogs = startCPUHogs(t, p.cpuHogs)
	}
	for i := 0; i < p.initialNPZ; i++ {
		f.file(t, fmt.Sprintf("training/init-%04d.npz", i), p.npzSize, 0)
	}
	// Writers.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < p.dbs; i++ {
		path := filepath.Join(f.dir, fmt.Sprintf("games/g%d.db", i))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS games (id INTEGER PRIMARY KEY, moves BLOB NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer db.Close()
			tick := time.NewTicker(time.Second / 10)
			defer tick.Stop()
			blob := make([]byte, 2048)
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for r := 0; r < max(1, p.rowsPerSec/10); r++ {
					if _, err := db.Exec(`INSERT INTO games (moves) VALUES (?)`, blob); err != nil {
						t.Errorf("db writer: %v", err)
						return
					}
				}
			}
		}()
	}
	write := func(every time.Duration, name string, size int64) {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			f.file(t, fmt.Sprintf(name, n), size, 0)
		}
	}
	wg.Add(2)
	go write(p.npzEvery, "training/new-%05d.npz", p.npzSize)
	go write(p.ckptEvery, "checkpoints/ckpt-%05d.pt", p.ckptSize)

	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); _ = e.Run(ctx) }()
	go func() { defer bg.Done(); _ = f.m.Watch(ctx, WatchOptions{}) }()
	time.Sleep(p.run)

	// SIGTERM: the writers are gone, the flush runs until the notice ends.
	close(stop)
	wg.Wait()
	sigterm := time.Now()
	rpoAtSigterm := e.RPO()
	sentContinuous := e.Status().BytesSent
	loadSigterm := loadAvg()
	res := e.Flush(context.Background(), sigterm.Add(p.notice))
	cancel()
	bg.Wait()
	stopHogs()
	if res.Error != "" {
		t.Logf("flush error: %s", res.Error)
	}

	// What do the targets really hold?
	reported := map[string]bool{}
	for _, m := range res.Made {
		reported[m.Path] = true
	}
	missedBy := map[string]FlushFile{}
	for _, m := range res.Missed {
		missedBy[m.Path] = m
	}
	var lostOld, lostNew, realMissed, reportedMissed, falseMade, falseMissed int64
	var files, bytes, backlogFiles, backlogBytes int64
	var oldestNoCopy time.Duration
	var lostOldFiles []string
	copies := map[int]int{}
	for _, ent := range f.m.Entries() {
		files++
		bytes += ent.Size
		age := sigterm.Sub(ent.Latest())
		old := age > p.interval
		var valid []Receipt
		sentBefore := false // a target had verified this version before SIGTERM
		for _, r := range ent.Receipts {
			if ent.ValidReceipt(r) {
				valid = append(valid, r)
				if r.VerifiedAt.Before(sigterm) {
					sentBefore = true
				}
			}
		}
		if old && !sentBefore {
			backlogFiles++
			backlogBytes += ent.Size
		}
		if !sentBefore && ent.Class != ClassDB && age > oldestNoCopy {
			oldestNoCopy = age
		}
		want := ""
		if ent.Class != ClassDB {
			want = fileSHA(t, ent.Path)
		}
		held := 0
		for _, d := range targets {
			rp := d.local(filepath.Join(d.t.RemoteDir, ent.RemoteName("vast-1")))
			if _, err := os.Stat(rp); err != nil {
				continue
			}
			got := fileSHA(t, rp)
			if ent.Class == ClassDB {
				// The copy must be the snapshot of the current version.
				for _, r := range valid {
					if r.NodeID == d.t.NodeID && r.SHA256 == got {
						held++
					}
				}
				continue
			}
			if got == want {
				held++
			}
		}
		copies[held]++
		if held == 0 {
			realMissed++
			if old {
				lostOld += ent.Size
				m := missedBy[ent.Path]
				lostOldFiles = append(lostOldFiles, fmt.Sprintf("%s (%s, %s before SIGTERM, sent before SIGTERM: %v): %s: %s",
					strings.TrimPrefix(ent.Path, f.dir+string(filepath.Separator)), fmtBytes(ent.Size), age.Round(time.Millisecond), sentBefore, m.Reason, m.Detail))
			} else {
				lostNew += ent.Size
			}
		}
		if !reported[ent.Path] {
			reportedMissed++
		}
		if reported[ent.Path] && held == 0 {
			falseMade++
			t.Errorf("%s reported made but no target holds its current content", ent.Path)
		}
		if !reported[ent.Path] && held > 0 {
			falseMissed++
			t.Errorf("%s reported missed but a target holds it", ent.Path)
		}
	}
	t.Logf("drill over %s: %d files, %s; interval %s, run %s, notice %s, bandwidth %d B/s per target, %d CPU hogs; load average %s at the start, %s at SIGTERM",
		kind, files, fmtBytes(bytes), p.interval, p.run, p.notice, p.bandwidthBs, p.cpuHogs, loadStart, loadSigterm)
	t.Logf("at SIGTERM: %s sent by continuous sync; older than the interval and not yet on a target: %d files, %s; oldest regular file on no target: %s (reported RPO: %d files, %s unsynced, oldest %.1f s)",
		fmtBytes(sentContinuous), backlogFiles, fmtBytes(backlogBytes), oldestNoCopy.Round(time.Millisecond),
		rpoAtSigterm.UnsyncedFiles, fmtBytes(rpoAtSigterm.UnsyncedBytes), rpoAtSigterm.OldestUnsyncedAgeSeconds)
	t.Logf("flush: %s sent in %s (first byte after %s), %d made, %d missed (reported); real misses %d; false made %d, false missed %d",
		fmtBytes(res.BytesSent), res.Finished.Sub(res.Started).Round(time.Millisecond), firstByteAfter(res),
		len(res.Made), len(res.Missed), realMissed, falseMade, falseMissed)
	t.Logf("bytes lost older than the interval: %d; newer: %d; copies per file: %v", lostOld, lostNew, fmtCopies(copies))
	for _, m := range res.Missed {
		t.Logf("  missed %s (%s, mtime %s before SIGTERM): %s: %s", strings.TrimPrefix(m.Path, f.dir+string(filepath.Separator)), fmtBytes(m.Size), sigterm.Sub(m.ModTime).Round(time.Millisecond), m.Reason, m.Detail)
	}
	if reportedMissed != int64(len(res.Missed)) {
		t.Errorf("flush result lists %d missed, %d entries are not in Made", len(res.Missed), reportedMissed)
	}
	// Nothing older than the interval may be lost. That is decided on what
	// the engine recorded, not on the wall clock's headroom: "older" is the
	// manifest's mtime against SIGTERM, "lost" is no target holding the
	// version the manifest has (and the exactness checks above tie that to
	// the flush's own Made/Missed). It is asserted in the full-size mode
	// only. In the small mode (1 s interval, 3 s notice, the CI machine's
	// two shared cores often loaded by other runs) a continuous cycle
	// (scan, hash, push, remote sha256sum) can legitimately take longer
	// than the interval, so files older than it can be unsent at SIGTERM
	// through no fault of the engine, and the 3 s flush can run out of time
	// for them on a stalled machine: there the figure is reported, not
	// asserted. The full-size notice (13.5 s) leaves the flush room for
	// the whole backlog a working engine can have, idle, under CPU load,
	// and at 8 MB/s, so a loss there is the engine's.
	if lostOld > 0 {
		sort.Strings(lostOldFiles)
		msg := fmt.Sprintf("%s older than the interval (%s) lost at SIGTERM, %d files:\n  %s", fmtBytes(lostOld), p.interval,
			len(lostOldFiles), strings.Join(lostOldFiles, "\n  "))
		if full {
			t.Error(msg)
		} else {
			t.Logf("%s\n(not asserted in the small mode: see the comment above)", msg)
		}
	}
}

func firstByteAfter(res FlushResult) string {
	if res.FirstByte.IsZero() {
		return "none"
	}
	return res.FirstByte.Sub(res.Started).Round(100 * time.Microsecond).String()
}

// fmtCopies prints copies-per-file counts as "2 copies: 41 files, ...",
// most copies first.
func fmtCopies(c map[int]int) string {
	var ks []int
	for k := range c {
		ks = append(ks, k)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ks)))
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%d copies: %d files", k, c[k]))
	}
	return strings.Join(parts, ", ")
}
