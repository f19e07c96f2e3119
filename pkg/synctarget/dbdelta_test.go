package synctarget

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ringmesh/ringmesh/internal/testutil"
	meshsync "github.com/ringmesh/ringmesh/pkg/sync"
)

// TestDatabaseDeltaIntoChrootedTarget: a SQLite database goes to a set-up
// target the way the engine sends it (full copies, then page deltas into
// the spare, hard link + posix-rename swap) through the per-node SFTP
// server, and every copy in place on the target opens and holds the rows
// of its snapshot.
func TestDatabaseDeltaIntoChrootedTarget(t *testing.T) {
	e := rootEnv(t)
	ctx := ctxT(t)
	e.admin.Fingerprint = e.o.Fingerprint()
	client, _, err := DialAdmin(ctx, e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := Setup(ctx, SSHRunner{Client: client}, Options{Layout: e.l, CA: e.caPub, Binary: e.bin}); err != nil {
		t.Fatalf("setup: %v\n%s", err, e.o.Log())
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "games.db")
	db, err := sql.Open("sqlite", src+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE games (id INTEGER PRIMARY KEY, payload BLOB)"); err != nil {
		t.Fatal(err)
	}
	insert := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if _, err := db.Exec("INSERT INTO games (payload) VALUES (randomblob(1000))"); err != nil {
				t.Fatal(err)
			}
		}
	}
	target := meshsync.Target{NodeID: "hetzner-cpu1", Endpoint: meshsync.Endpoint{Host: e.o.Host, Port: e.o.Port, User: e.l.Account},
		Signer: e.agentCert(t, "vast-1", e.l.Account, time.Now(), time.Hour), HostKey: meshsync.HostKeyConfig{Fingerprint: e.o.Fingerprint()},
		RemoteDir: e.l.RemoteDir()}
	tr := meshsync.NewSFTPTransport(meshsync.SFTPOptions{DBStateDir: filepath.Join(dir, "dbdelta")})
	defer tr.Close()
	remote := filepath.Join(e.l.IncomingDir(), "vast-1/games/games.db")
	rows := 0
	for i := 0; i < 4; i++ {
		insert(200)
		rows += 200
		snap, err := meshsync.SnapshotSQLite(ctx, src, filepath.Join(dir, "snaps"))
		if err != nil {
			t.Fatal(err)
		}
		var rc meshsync.Receipt
		testutil.Eventually(t, time.Minute, func() error { // sshd re-executes itself on SIGHUP after setup
			var err error
			rc, err = tr.Push(ctx, meshsync.LocalFile{Path: snap.Path, RemoteName: "vast-1/games/games.db", Size: snap.Size, SHA256: snap.SHA256, Pages: snap.Pages}, target)
			return err
		})
		os.Remove(snap.Path)
		if rc.SHA256 != snap.SHA256 {
			t.Fatalf("push %d: receipt %+v for snapshot %s", i, rc, snap.SHA256)
		}
		if i >= 2 && !rc.Delta {
			t.Fatalf("push %d: not a page delta: %+v", i, rc)
		}
		if got := countRows(t, remote); got != rows {
			t.Fatalf("push %d: the copy on the target holds %d rows, want %d", i, got, rows)
		}
	}
	ents, err := os.ReadDir(filepath.Dir(remote))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	if got := strings.Join(names, " "); got != "games.db games.db"+meshsync.SpareSuffix {
		t.Fatalf("remote files %q, want the copy and its spare", got)
	}
}

func countRows(t *testing.T, p string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+p+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity_check %q %v", p, ok, err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM games").Scan(&n); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", p, err))
	}
	return n
}
