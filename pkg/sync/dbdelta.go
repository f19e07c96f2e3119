package meshsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Remote names of a database's copies on a target (see the package
// documentation, "Databases"): <name> is always a complete, verified
// version; <name>SpareSuffix is the spare the next version is written into
// page by page; <name>PrevSuffix exists only for a moment during the swap.
const (
	SpareSuffix = ".next"
	PrevSuffix  = ".prev"
)

// pageSumLen is the length in bytes of one page hash (SHA-256 truncated to
// 128 bits: it only has to notice that a page changed; the whole file's
// SHA-256, verified on the target, decides whether a copy is right).
const pageSumLen = 16

// PageMap holds the per-page hashes of one version of a database file.
type PageMap struct {
	// PageSize in bytes: the SQLite page size from the file header (bytes
	// 16-17, 1 meaning 65536), or 4096 when the header is not a valid
	// SQLite header (the delta then works on 4 KiB blocks).
	PageSize int
	// Size of the file in bytes.
	Size int64
	// Sums holds pageSumLen bytes per page, page 0 first (the last page may
	// be short when Size is not a multiple of PageSize).
	Sums []byte
}

// Pages is the number of pages of the file.
func (m *PageMap) Pages() int { return len(m.Sums) / pageSumLen }

func (m *PageMap) sum(i int) []byte { return m.Sums[i*pageSumLen : (i+1)*pageSumLen] }

// sqlitePageSize reads the page size from a SQLite header (bytes 16-17,
// big-endian, 1 = 65536); 0 when hdr is not a SQLite 3 header or the size
// is not a power of two in [512, 65536].
func sqlitePageSize(hdr []byte) int {
	if len(hdr) < 100 || !bytes.HasPrefix(hdr, []byte("SQLite format 3\x00")) {
		return 0
	}
	ps := int(binary.BigEndian.Uint16(hdr[16:18]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return 0
	}
	return ps
}

// hashPages reads the file p once and returns its page map and whole-file
// SHA-256 (hex), stopping on ctx.
func hashPages(ctx context.Context, p string) (*PageMap, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	hdr := make([]byte, 100)
	n, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, "", err
	}
	ps := sqlitePageSize(hdr[:n])
	if ps == 0 {
		ps = 4096
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", err
	}
	pm := &PageMap{PageSize: ps}
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		pm.Sums = make([]byte, 0, (fi.Size()+int64(ps)-1)/int64(ps)*pageSumLen)
	}
	whole := sha256.New()
	// A multiple of every page size up to 64 KiB.
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		k, rerr := io.ReadFull(f, buf)
		if k > 0 {
			whole.Write(buf[:k])
			for off := 0; off < k; off += ps {
				s := sha256.Sum256(buf[off:min(off+ps, k)])
				pm.Sums = append(pm.Sums, s[:pageSumLen]...)
			}
			pm.Size += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, "", rerr
		}
	}
	return pm, hex.EncodeToString(whole.Sum(nil)), nil
}

// dbVersion is what the agent knows about one remote copy of a database:
// the whole file's SHA-256 and its page map.
type dbVersion struct {
	SHA256 [32]byte
	Pages  PageMap
}

// dbRemoteState is what the agent believes the two remote files of one
// database on one target hold. Nil fields: unknown (the next push writes
// that file whole).
type dbRemoteState struct {
	Cur   *dbVersion // <name>
	Spare *dbVersion // <name>.next
}

// deltaStore keeps the dbRemoteState per (target, remote path): in files
// under dir (the agent's state directory, so that a restart does not force
// a full copy), or in memory when dir is "". Every file ends with the
// SHA-256 of what precedes it; a file that does not check out is ignored
// (the next push is a full copy), never trusted.
type deltaStore struct {
	dir string
	mu  sync.Mutex
	mem map[string][]byte
}

const deltaMagic = "RMDBDL1\n"

func (s *deltaStore) key(nodeID, remote string) string {
	h := sha256.Sum256([]byte(nodeID + "\x00" + remote))
	return hex.EncodeToString(h[:16])
}

func (s *deltaStore) path(key string) string { return filepath.Join(s.dir, key+".pages") }

// load returns the stored state or nil (none, unreadable or corrupt).
func (s *deltaStore) load(key string) (*dbRemoteState, error) {
	var b []byte
	if s.dir == "" {
		s.mu.Lock()
		b = s.mem[key]
		s.mu.Unlock()
		if b == nil {
			return nil, nil
		}
	} else {
		var err error
		b, err = os.ReadFile(s.path(key))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	st, err := decodeDeltaState(b)
	if err != nil {
		return nil, fmt.Errorf("database delta state %s: %w", s.path(key), err)
	}
	return st, nil
}

func (s *deltaStore) save(key string, st *dbRemoteState) error {
	b := encodeDeltaState(st)
	if s.dir == "" {
		s.mu.Lock()
		if s.mem == nil {
			s.mem = map[string][]byte{}
		}
		s.mem[key] = b
		s.mu.Unlock()
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	return writeFileAtomic(s.path(key), b)
}

func (s *deltaStore) drop(key string) error {
	if s.dir == "" {
		s.mu.Lock()
		delete(s.mem, key)
		s.mu.Unlock()
		return nil
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func encodeDeltaState(st *dbRemoteState) []byte {
	var b bytes.Buffer
	b.WriteString(deltaMagic)
	for _, v := range []*dbVersion{st.Cur, st.Spare} {
		if v == nil {
			b.WriteByte(0)
			continue
		}
		b.WriteByte(1)
		b.Write(v.SHA256[:])
		_ = binary.Write(&b, binary.BigEndian, v.Pages.Size)
		_ = binary.Write(&b, binary.BigEndian, uint32(v.Pages.PageSize))
		_ = binary.Write(&b, binary.BigEndian, uint32(v.Pages.Pages()))
		b.Write(v.Pages.Sums)
	}
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

func decodeDeltaState(b []byte) (*dbRemoteState, error) {
	if len(b) < len(deltaMagic)+2+sha256.Size || string(b[:len(deltaMagic)]) != deltaMagic {
		return nil, errors.New("not a delta state file")
	}
	body, tail := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], tail) {
		return nil, errors.New("checksum mismatch")
	}
	r := bytes.NewReader(body[len(deltaMagic):])
	st := &dbRemoteState{}
	for _, dst := range []**dbVersion{&st.Cur, &st.Spare} {
		flag, err := r.ReadByte()
		if err != nil {
			return nil, errors.New("truncated")
		}
		if flag == 0 {
			continue
		}
		v := &dbVersion{}
		var ps, n uint32
		if _, err := io.ReadFull(r, v.SHA256[:]); err != nil {
			return nil, errors.New("truncated")
		}
		if err := binary.Read(r, binary.BigEndian, &v.Pages.Size); err != nil {
			return nil, errors.New("truncated")
		}
		if err := binary.Read(r, binary.BigEndian, &ps); err != nil {
			return nil, errors.New("truncated")
		}
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			return nil, errors.New("truncated")
		}
		if ps < 512 || ps > 65536 || v.Pages.Size < 0 {
			return nil, fmt.Errorf("bad page size %d or file size %d", ps, v.Pages.Size)
		}
		v.Pages.PageSize = int(ps)
		if want := (v.Pages.Size + int64(ps) - 1) / int64(ps); int64(n) != want {
			return nil, fmt.Errorf("%d page hashes for %d bytes of %d-byte pages", n, v.Pages.Size, ps)
		}
		if int64(r.Len()) < int64(n)*pageSumLen {
			return nil, errors.New("truncated")
		}
		v.Pages.Sums = make([]byte, int(n)*pageSumLen)
		if _, err := io.ReadFull(r, v.Pages.Sums); err != nil {
			return nil, errors.New("truncated")
		}
		*dst = v
	}
	if r.Len() != 0 {
		return nil, errors.New("trailing bytes")
	}
	return st, nil
}

// pageRun is a run of consecutive changed pages: bytes [off, off+n).
type pageRun struct{ off, n int64 }

// changedRuns lists the byte ranges of next that differ from base (pages
// whose hash differs, and every page beyond base's end), merging adjacent
// pages into runs of at most maxRun bytes. Both maps must have the same
// page size.
func changedRuns(base, next *PageMap, maxRun int64) []pageRun {
	var runs []pageRun
	ps := int64(next.PageSize)
	for i := 0; i < next.Pages(); i++ {
		if i < base.Pages() && bytes.Equal(base.sum(i), next.sum(i)) {
			// The last page of base may be short: equal hashes then mean
			// equal bytes and lengths, nothing to write.
			continue
		}
		off := int64(i) * ps
		n := min(ps, next.Size-off)
		if k := len(runs) - 1; k >= 0 && runs[k].off+runs[k].n == off && runs[k].n+n <= maxRun {
			runs[k].n += n
			continue
		}
		runs = append(runs, pageRun{off, n})
	}
	return runs
}

// stepHook, when set (tests), is called before each step of a database
// push ("delta write", "full write", "verify", "link", "rename",
// "rename spare", "save state"); an error aborts the push there, as a crash
// would.
type stepHook func(step string) error

// runDB pushes a database snapshot (p.file.Pages set) as a page delta into
// the spare remote file, verifies it and swaps it into place. See the
// package documentation, "Databases".
func (p *sftpPush) runDB() (Receipt, error) {
	sc := p.c.sc
	pm := p.file.Pages
	step := func(s string) error {
		*p.op = s
		if h := p.t.stepHook; h != nil {
			return h(s)
		}
		return nil
	}
	*p.op = "open local snapshot"
	lf, err := os.Open(p.file.Path)
	if err != nil {
		return Receipt{}, err
	}
	defer lf.Close()
	fi, err := lf.Stat()
	if err != nil {
		return Receipt{}, err
	}
	size := fi.Size()
	if size != pm.Size || p.file.SHA256 == "" || len(p.file.SHA256) != 64 {
		return Receipt{}, fmt.Errorf("%w: snapshot %s is %d bytes with SHA-256 %q, its page map says %d bytes",
			ErrSourceChanged, p.file.Path, size, p.file.SHA256, pm.Size)
	}
	var want [32]byte
	if _, err := hex.Decode(want[:], []byte(p.file.SHA256)); err != nil {
		return Receipt{}, fmt.Errorf("snapshot %s: bad SHA-256 %q: %w", p.file.Path, p.file.SHA256, err)
	}
	if err := p.ensureDir(); err != nil {
		return Receipt{}, err
	}
	spare, prev := p.remote+SpareSuffix, p.remote+PrevSuffix
	store := &p.t.delta
	key := store.key(p.target.NodeID, p.remote)
	st, lerr := store.load(key)
	if lerr != nil {
		p.t.opts.Logger.Warn().Err(lerr).Str("target", p.target.NodeID).Str("remote", p.remote).
			Msg("database delta state unusable; sending the whole database")
		st = nil
	}

	*p.op = "stat remote"
	var (
		wg                      sync.WaitGroup
		spareFI                 os.FileInfo
		curErr, spareErr, pvErr error
		free                    int64
		freeOK                  bool
	)
	wg.Add(4)
	go func() { defer wg.Done(); _, curErr = sc.Stat(p.remote) }()
	go func() { defer wg.Done(); spareFI, spareErr = sc.Stat(spare) }()
	go func() { defer wg.Done(); _, pvErr = sc.Stat(prev) }()
	go func() { defer wg.Done(); free, freeOK = p.freeSpace() }()
	wg.Wait()
	for _, e := range []error{curErr, spareErr, pvErr} {
		if e != nil && !errors.Is(e, os.ErrNotExist) {
			return Receipt{}, e
		}
	}
	if pvErr == nil {
		// A swap was interrupted: which inode each name holds now is not
		// known for sure. <name> is a verified version whatever the step;
		// drop the extra name and send the whole database into a new spare.
		*p.op = "remove interrupted swap"
		if err := sc.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Receipt{}, err
		}
		st = nil
	}
	_, hasLink := sc.HasExtension("hardlink@openssh.com")
	_, hasPosix := sc.HasExtension("posix-rename@openssh.com")
	canSwap := hasLink && hasPosix

	var sentTotal atomic.Int64
	progress := func(n int64) {
		v := sentTotal.Add(n)
		if p.file.Progress != nil {
			p.file.Progress(v)
		}
	}
	delta := canSwap && st != nil && st.Spare != nil && spareErr == nil &&
		spareFI.Size() == st.Spare.Pages.Size && st.Spare.Pages.PageSize == pm.PageSize
	verified := false
	verifiedBy := ""
	if delta {
		runs := changedRuns(&st.Spare.Pages, pm, 1<<20)
		var need int64
		if size > st.Spare.Pages.Size {
			need = size - st.Spare.Pages.Size
		}
		if freeOK && free < need+p.target.MinFreeBytes {
			*p.op = "check free space"
			return Receipt{}, fmt.Errorf("%w: %s has %s free under %s, %s needed to grow the database copy (+ %s reserve)",
				ErrTargetDiskFull, p.target.NodeID, fmtBytes(free), p.remote, fmtBytes(need), fmtBytes(p.target.MinFreeBytes))
		}
		if err := step("delta write"); err != nil {
			return Receipt{}, err
		}
		if err := p.writeRuns(lf, spare, runs, size, st.Spare.Pages.Size, progress); err != nil {
			return Receipt{}, err
		}
		if err := step("verify"); err != nil {
			return Receipt{}, err
		}
		ok, why, err := p.verifyDelta(spare, size, runs, key, &verifiedBy)
		if err != nil {
			return Receipt{}, err
		}
		if ok {
			verified = true
		} else {
			p.t.opts.Logger.Warn().Str("target", p.target.NodeID).Str("spare", spare).Str("why", why).
				Msg("database spare does not verify after the page delta; sending the whole database")
		}
	}
	if !verified {
		delta = false
		var have int64
		if spareErr == nil {
			have = spareFI.Size()
		}
		if need := size - have + p.target.MinFreeBytes; freeOK && free < need {
			*p.op = "check free space"
			return Receipt{}, fmt.Errorf("%w: %s has %s free under %s, %s needed (%s of database + %s reserve)",
				ErrTargetDiskFull, p.target.NodeID, fmtBytes(free), p.remote, fmtBytes(need),
				fmtBytes(size-have), fmtBytes(p.target.MinFreeBytes))
		}
		if err := step("full write"); err != nil {
			return Receipt{}, err
		}
		if err := p.writeWhole(lf, spare, size, progress); err != nil {
			return Receipt{}, err
		}
		if err := step("verify"); err != nil {
			return Receipt{}, err
		}
		got, err := p.remoteSHA256(spare, size, false)
		if err != nil {
			return Receipt{}, err
		}
		if got == p.file.SHA256 {
			verifiedBy = p.verifiedBy(size)
			p.t.fullVerified.Store(key, p.t.opts.Now())
		}
		if got != p.file.SHA256 {
			_ = sc.Remove(spare)
			return Receipt{}, fmt.Errorf("%w: %s on %s hashes to %s, sent %s; spare removed, not swapped into place",
				ErrChecksumMismatch, spare, p.target.NodeID, got, p.file.SHA256)
		}
	}

	// Swap. From here until the new state is saved, the stored state is
	// gone: a crash in between makes the next push a full copy.
	*p.op = "swap into place"
	if err := store.drop(key); err != nil {
		return Receipt{}, err
	}
	linked := false
	if canSwap && curErr == nil {
		if err := step("link"); err != nil {
			return Receipt{}, err
		}
		if err := sc.Link(p.remote, prev); err == nil {
			linked = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return Receipt{}, fmt.Errorf("hardlink %s to %s: %w", p.remote, prev, err)
		}
	}
	if err := step("rename"); err != nil {
		return Receipt{}, err
	}
	if hasPosix {
		err = sc.PosixRename(spare, p.remote)
	} else {
		// SFTP v3 rename refuses to overwrite: remove first (not atomic; a
		// crash in between leaves only the verified spare).
		if err = sc.Remove(p.remote); err == nil || errors.Is(err, os.ErrNotExist) {
			err = sc.Rename(spare, p.remote)
		}
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("rename %s to %s: %w", spare, p.remote, err)
	}
	next := &dbRemoteState{Cur: &dbVersion{SHA256: want, Pages: *pm}}
	if linked {
		if err := step("rename spare"); err != nil {
			return Receipt{}, err
		}
		if err := sc.PosixRename(prev, spare); err != nil {
			p.t.opts.Logger.Warn().Err(err).Str("target", p.target.NodeID).Str("prev", prev).
				Msg("could not keep the previous database version as the spare; the next push sends the whole database")
		} else if st != nil && st.Cur != nil {
			next.Spare = st.Cur
		}
	}
	if err := step("save state"); err != nil {
		return Receipt{}, err
	}
	if err := store.save(key, next); err != nil {
		p.t.opts.Logger.Warn().Err(err).Str("target", p.target.NodeID).Str("remote", p.remote).
			Msg("could not save the database delta state; the next push sends the whole database")
	}
	rc := p.receipt(p.file.SHA256, size, sentTotal.Load(), 0)
	rc.Delta, rc.VerifiedBy = delta, verifiedBy
	return rc, nil
}

// verifyDelta reports whether the spare holds the snapshot after the page
// delta runs were written into it (why says what differs when not). Where
// the target hashes it (sha256sum over exec, files of ExecHashMinSize and
// up), or the whole copy was not read back and verified within
// DBFullVerifyInterval, the whole spare is hashed. Otherwise only the runs
// written are read back and compared page by page with the snapshot's page
// map: the rest of the spare is the version the state says it is, verified
// whole when it was sent. Reading back a multi-GB copy every cycle is what
// this avoids on chrooted SFTP targets.
func (p *sftpPush) verifyDelta(spare string, size int64, runs []pageRun, key string, by *string) (ok bool, why string, err error) {
	iv := p.t.opts.DBFullVerifyInterval
	last, _ := p.t.fullVerified.Load(key)
	recent := iv > 0 && last != nil && p.t.opts.Now().Sub(last.(time.Time)) < iv
	remoteHash := size >= p.t.opts.ExecHashMinSize && p.c.execMode.Load() != execUnavailable
	if remoteHash || !recent {
		got, err := p.remoteSHA256(spare, size, false)
		if err != nil {
			return false, "", err
		}
		if got != p.file.SHA256 {
			return false, fmt.Sprintf("whole spare hashes to %s, want %s", got, p.file.SHA256), nil
		}
		*by = p.verifiedBy(size)
		p.t.fullVerified.Store(key, p.t.opts.Now())
		return true, "", nil
	}
	*p.op = "verify written pages"
	rf, err := p.c.sc.Open(spare)
	if err != nil {
		return false, "", err
	}
	defer rf.Close()
	fi, err := rf.Stat()
	if err != nil {
		return false, "", err
	}
	if fi.Size() != size {
		return false, fmt.Sprintf("spare is %d bytes, want %d", fi.Size(), size), nil
	}
	pm := p.file.Pages
	ps := int64(pm.PageSize)
	buf := make([]byte, 1<<20)
	for _, r := range runs {
		b := buf[:r.n]
		if _, err := rf.ReadAt(b, r.off); err != nil && !(errors.Is(err, io.EOF) && r.off+r.n >= size) {
			return false, "", err
		}
		for off := int64(0); off < r.n; off += ps {
			pg := (r.off + off) / ps
			sum := sha256.Sum256(b[off:min(off+ps, r.n)])
			if !bytes.Equal(sum[:pageSumLen], pm.sum(int(pg))) {
				return false, fmt.Sprintf("page %d does not match after the write", pg+1), nil
			}
		}
	}
	*by = "written pages"
	return true, "", nil
}

// verifiedBy names how remoteSHA256 just verified a file of size bytes.
func (p *sftpPush) verifiedBy(size int64) string {
	if size >= p.t.opts.ExecHashMinSize && p.c.execMode.Load() == execWorks {
		return "sha256sum"
	}
	return "read back"
}

// ensureDir creates the remote file's directory (once per connection).
func (p *sftpPush) ensureDir() error {
	dir := path.Dir(p.remote)
	if _, ok := p.c.dirs.Load(dir); ok {
		return nil
	}
	*p.op = "create remote directory"
	if err := p.c.sc.MkdirAll(dir); err != nil {
		return err
	}
	p.c.dirs.Store(dir, true)
	return nil
}

// writeRuns writes the given byte ranges of the local snapshot into the
// existing remote spare (several writes in flight), then truncates it to
// size when it was longer (oldSize) and syncs it.
func (p *sftpPush) writeRuns(lf *os.File, spare string, runs []pageRun, size, oldSize int64, progress func(int64)) error {
	rf, err := p.c.sc.OpenFile(spare, os.O_WRONLY)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			_ = rf.Close()
		}
	}()
	lim := p.t.lims.get(p.target.NodeID, p.target.BandwidthLimit)
	throttle := &pushReader{ctx: p.ctx, lim: lim, onWait: p.t.opts.OnThrottle, nodeID: p.target.NodeID}
	workers := min(max(p.t.opts.Concurrency/4, 1), 16, max(len(runs), 1))
	work := make(chan pageRun)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	wctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for r := range work {
				if wctx.Err() != nil {
					continue
				}
				b := buf[:r.n]
				if _, err := lf.ReadAt(b, r.off); err != nil {
					fail(err)
					cancel()
					continue
				}
				for off := 0; off < len(b); {
					k := len(b) - off
					if lim != nil {
						k = min(k, lim.Burst())
						if err := throttle.wait(k); err != nil {
							fail(err)
							cancel()
							break
						}
					}
					if _, err := rf.WriteAt(b[off:off+k], r.off+int64(off)); err != nil {
						fail(err)
						cancel()
						break
					}
					progress(int64(k))
					off += k
				}
			}
		})
	}
	for _, r := range runs {
		if wctx.Err() != nil {
			break
		}
		select {
		case work <- r:
		case <-wctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil && p.ctx.Err() != nil {
		firstErr = p.ctx.Err()
	}
	if firstErr == nil && oldSize > size {
		firstErr = rf.Truncate(size)
	}
	if firstErr == nil {
		if serr := rf.Sync(); serr != nil && !isUnsupported(serr) {
			firstErr = serr
		}
	}
	cerr := rf.Close()
	closed = true
	if firstErr == nil {
		firstErr = cerr
	}
	if firstErr != nil && p.diskFull(firstErr, 0) {
		return fmt.Errorf("%w: %s ran out of space writing %s (%v)", ErrTargetDiskFull, p.target.NodeID, spare, firstErr)
	}
	return firstErr
}

// writeWhole replaces the remote spare with a new file holding the whole
// local snapshot (a new inode: whatever the old name pointed at is left
// alone) and checks that the bytes sent hash to the snapshot's SHA-256.
func (p *sftpPush) writeWhole(lf *os.File, spare string, size int64, progress func(int64)) error {
	sc := p.c.sc
	if err := sc.Remove(spare); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	rf, err := sc.OpenFile(spare, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	if _, err := lf.Seek(0, io.SeekStart); err != nil {
		_ = rf.Close()
		return err
	}
	var last int64
	pr := &pushReader{
		ctx: p.ctx, r: io.LimitReader(lf, size), h: sha256.New(),
		lim: p.t.lims.get(p.target.NodeID, p.target.BandwidthLimit), onWait: p.t.opts.OnThrottle,
		nodeID: p.target.NodeID,
		progress: func(sent int64) {
			progress(sent - last)
			last = sent
		},
	}
	n, werr := rf.ReadFromWithConcurrency(pr, p.t.opts.Concurrency)
	if werr == nil {
		if serr := rf.Sync(); serr != nil && !isUnsupported(serr) {
			werr = serr
		}
	}
	if cerr := rf.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		if p.ctx.Err() != nil {
			return fmt.Errorf("%w after %d of %d bytes", p.ctx.Err(), pr.sent, size)
		}
		if p.diskFull(werr, size-pr.sent) {
			_ = sc.Remove(spare)
			return fmt.Errorf("%w: %s ran out of space writing %s after %d of %d bytes (%v); spare removed",
				ErrTargetDiskFull, p.target.NodeID, spare, pr.sent, size, werr)
		}
		return fmt.Errorf("%w (after %d of %d bytes)", werr, pr.sent, size)
	}
	if sent := hex.EncodeToString(pr.h.Sum(nil)); n != size || sent != p.file.SHA256 {
		_ = sc.Remove(spare)
		return fmt.Errorf("%w: snapshot %s read %d bytes hashing to %s, expected %d bytes, %s",
			ErrSourceChanged, p.file.Path, n, sent, size, p.file.SHA256)
	}
	return nil
}
