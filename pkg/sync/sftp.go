package meshsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/sync/route"
)

// PartialSuffix is appended to a file's remote name while it is uploaded.
const PartialSuffix = ".partial"

// SFTPOptions tune an SFTPTransport; zero values pick the defaults.
type SFTPOptions struct {
	// MaxPacket is the payload of one SFTP write request in bytes; default
	// 32 KiB, the size every SFTP server must accept. Larger values are
	// passed on unchecked (OpenSSH accepts up to 255 KiB; on loopback they
	// measured no faster).
	MaxPacket int
	// Concurrency is the number of write requests in flight per file;
	// default 64.
	Concurrency int
	// ResumeWindow (bytes): when the partial's full prefix does not verify,
	// the upload retries from this many bytes earlier before starting over
	// (writes in flight when a connection broke may leave holes at the end).
	// Default MaxPacket*Concurrency.
	ResumeWindow int64
	// KeepAlive is the interval of keepalive@openssh.com probes on cached
	// connections; a probe unanswered for 3 intervals drops the connection.
	// Default 15 s; negative disables.
	KeepAlive time.Duration
	// IdleTimeout closes cached connections unused for this long; default 2 min.
	IdleTimeout time.Duration
	// CancelGrace is how long a push may keep running after its context is
	// done before its connection is closed under it; default 2 s.
	CancelGrace time.Duration
	// ExecHashMinSize (bytes): files at least this big are verified with
	// "sha256sum" run on the target over an exec channel; smaller ones by
	// reading them back over SFTP, which is cheaper than starting a remote
	// process (OpenSSH forks a session and a shell per exec). Default 8 MiB.
	ExecHashMinSize int64
	// DBFullVerifyInterval: after a database page delta the spare is
	// verified by reading back only the pages written when the target has no
	// sha256sum (chrooted SFTP) and the whole copy of that database on that
	// target was read back and verified within this interval; otherwise the
	// whole copy is read back. Default 1 hour; negative = always the whole
	// copy.
	DBFullVerifyInterval time.Duration
	// Now is the clock of DBFullVerifyInterval; default time.Now.
	Now func() time.Time
	// OnThrottle, when set, sees every bandwidth limiter reservation.
	OnThrottle ThrottleFunc
	// DBStateDir is where the per-page hashes of the database versions each
	// target holds are kept (one small file per database and target), so
	// that a restart does not force a full copy; "" keeps them in memory
	// only. The agent uses <state dir>/dbdelta.
	DBStateDir string
	// Logger; the zero value logs nothing.
	Logger zerolog.Logger
}

// SFTPTransport is the default Transport: pure Go SSH + SFTP, no binary
// needed on either end. It caches one SSH connection per target and is safe
// for concurrent use. See the package documentation for the upload protocol.
type SFTPTransport struct {
	opts  SFTPOptions
	lims  limiters
	delta deltaStore
	// fullVerified is when each database copy (deltaStore key) was last
	// read back whole and verified (time.Time).
	fullVerified sync.Map
	// stepHook injects failures into database pushes (tests).
	stepHook stepHook

	mu     sync.Mutex
	conns  map[string]*sftpConn
	closed bool
}

var _ Transport = (*SFTPTransport)(nil)

// NewSFTPTransport returns an SFTP transport.
func NewSFTPTransport(opts SFTPOptions) *SFTPTransport {
	if opts.MaxPacket <= 0 {
		opts.MaxPacket = 32 << 10
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.ResumeWindow <= 0 {
		opts.ResumeWindow = int64(opts.MaxPacket) * int64(opts.Concurrency)
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 2 * time.Minute
	}
	if opts.CancelGrace <= 0 {
		opts.CancelGrace = 2 * time.Second
	}
	if opts.ExecHashMinSize <= 0 {
		opts.ExecHashMinSize = 8 << 20
	}
	if opts.DBFullVerifyInterval == 0 {
		opts.DBFullVerifyInterval = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &SFTPTransport{opts: opts, conns: map[string]*sftpConn{}, delta: deltaStore{dir: opts.DBStateDir}}
}

// Close drops every cached connection. Pushes in progress fail.
func (t *SFTPTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = map[string]*sftpConn{}
	t.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	return nil
}

const (
	execUnknown int32 = iota
	execWorks
	execUnavailable
)

type sftpConn struct {
	key  string
	addr string
	ssh  *ssh.Client
	sc   *sftp.Client

	refs     int       // guarded by SFTPTransport.mu
	lastUsed time.Time // guarded by SFTPTransport.mu

	broken    atomic.Bool
	execMode  atomic.Int32
	dirs      sync.Map // remote directories known to exist
	closeOnce sync.Once
	done      chan struct{} // closed by shutdown
	kaDone    chan struct{} // closed when the keepalive goroutine has returned
}

// close shuts the connection and waits for its keepalive goroutine, so no
// goroutine outlives the connection.
func (c *sftpConn) close() {
	c.shutdown()
	<-c.kaDone
}

// shutdown marks the connection broken and closes it; the keepalive
// goroutine calls it on its own failures (close would wait for itself).
func (c *sftpConn) shutdown() {
	c.closeOnce.Do(func() {
		c.broken.Store(true)
		close(c.done)
		_ = c.sc.Close()
		_ = c.ssh.Close()
	})
}

func (c *sftpConn) keepalive(interval time.Duration) {
	defer close(c.kaDone)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		res := make(chan error, 1)
		go func() {
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		timer := time.NewTimer(3 * interval)
		select {
		case err := <-res:
			timer.Stop()
			if err != nil {
				c.shutdown()
				return
			}
		case <-timer.C:
			// A closed ssh client fails the pending request, so the probe
			// goroutine returns once shutdown has run.
			c.shutdown()
			<-res
			return
		case <-c.done:
			timer.Stop()
			<-res
			return
		}
	}
}

func connKey(t Target) string {
	signer := t.KeyPath
	if t.Signer != nil {
		signer = ssh.FingerprintSHA256(t.Signer.PublicKey())
	}
	return strings.Join([]string{t.NodeID, t.Endpoint.Addr(), t.Endpoint.User, signer,
		t.HostKey.KnownHostsFile, t.HostKey.Fingerprint, strings.Join(t.HostKey.Algorithms, ",")}, "\x00")
}

func loadSigner(t Target) (ssh.Signer, error) {
	if t.Signer != nil {
		return t.Signer, nil
	}
	if t.KeyPath == "" {
		return nil, fmt.Errorf("target %s: no ssh key (set KeyPath or Signer)", t.NodeID)
	}
	pemBytes, err := os.ReadFile(t.KeyPath)
	if err != nil {
		return nil, fmt.Errorf("target %s: read ssh key: %w", t.NodeID, err)
	}
	s, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("target %s: parse ssh key %s: %w", t.NodeID, t.KeyPath, err)
	}
	return s, nil
}

// dialSSH opens an authenticated, host-key-verified SSH client to target.
// Both the SFTP transport and the rsync transport's helpers use it.
func dialSSH(ctx context.Context, target Target, extra func(*ssh.ClientConfig)) (*ssh.Client, func() bool, error) {
	if target.Endpoint.Host == "" {
		return nil, nil, fmt.Errorf("target %s: no ssh host", target.NodeID)
	}
	if target.Endpoint.User == "" {
		return nil, nil, fmt.Errorf("target %s: no ssh user", target.NodeID)
	}
	cb, algos, err := hostKeyPolicy(target)
	if err != nil {
		return nil, nil, err
	}
	signer, err := loadSigner(target)
	if err != nil {
		return nil, nil, err
	}
	ct := target.ConnectTimeout
	if ct <= 0 {
		ct = 15 * time.Second
	}
	cfg := &ssh.ClientConfig{
		User:              target.Endpoint.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		Timeout:           ct,
	}
	if extra != nil {
		extra(cfg)
	}
	addr := target.Endpoint.Addr()
	dctx, cancel := context.WithTimeout(ctx, ct)
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("connect to %s (%s): %w", target.NodeID, addr, err)
	}
	// Abort the handshake (and whatever the caller does until it calls
	// the returned stop) when the context ends or the connect timeout passes.
	stopAfter := context.AfterFunc(dctx, func() { _ = nc.Close() })
	stop := func() bool {
		ok := stopAfter()
		cancel()
		return ok
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		ctxErr := dctx.Err()
		stop()
		_ = nc.Close()
		if ctxErr != nil && !errors.Is(err, ErrHostKeyMismatch) && !errors.Is(err, ErrHostKeyUnknown) {
			return nil, nil, fmt.Errorf("ssh handshake with %s (%s): %w (%v)", target.NodeID, addr, ctxErr, err)
		}
		return nil, nil, fmt.Errorf("ssh handshake with %s (%s): %w", target.NodeID, addr, err)
	}
	return ssh.NewClient(conn, chans, reqs), stop, nil
}

func (t *SFTPTransport) dial(ctx context.Context, target Target, key string) (*sftpConn, error) {
	client, stop, err := dialSSH(ctx, target, nil)
	if err != nil {
		return nil, err
	}
	sc, err := sftp.NewClient(client,
		sftp.MaxPacketUnchecked(t.opts.MaxPacket),
		sftp.MaxConcurrentRequestsPerFile(t.opts.Concurrency),
		sftp.UseConcurrentWrites(true),
		sftp.UseConcurrentReads(true))
	stopped := stop()
	if err == nil && !stopped {
		_ = sc.Close()
		err = ctx.Err()
		if err == nil {
			err = context.DeadlineExceeded
		}
	}
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("start sftp on %s (%s): %w", target.NodeID, target.Endpoint.Addr(), err)
	}
	c := &sftpConn{key: key, addr: target.Endpoint.Addr(), ssh: client, sc: sc, done: make(chan struct{}), kaDone: make(chan struct{})}
	if t.opts.KeepAlive > 0 {
		go c.keepalive(t.opts.KeepAlive)
	} else {
		close(c.kaDone)
	}
	return c, nil
}

func (t *SFTPTransport) acquire(ctx context.Context, target Target) (*sftpConn, error) {
	key := connKey(target)
	now := time.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, errors.New("sftp transport closed")
	}
	for k, c := range t.conns {
		if c.refs == 0 && (c.broken.Load() || now.Sub(c.lastUsed) > t.opts.IdleTimeout) {
			c.close()
			delete(t.conns, k)
		}
	}
	if c := t.conns[key]; c != nil && !c.broken.Load() {
		c.refs++
		t.mu.Unlock()
		return c, nil
	}
	t.mu.Unlock()

	c, err := t.dial(ctx, target, key)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.close()
		return nil, errors.New("sftp transport closed")
	}
	if old := t.conns[key]; old != nil && !old.broken.Load() {
		c.close()
		old.refs++
		return old, nil
	}
	c.refs = 1
	t.conns[key] = c
	return c, nil
}

func (t *SFTPTransport) release(c *sftpConn, err error) {
	if err != nil && isConnError(err) {
		c.close()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c.refs--
	c.lastUsed = time.Now()
	if c.broken.Load() && t.conns[c.key] == c {
		delete(t.conns, c.key)
	}
}

// isConnError reports whether err may have left the connection unusable.
// SFTP status replies and our own verdicts leave it healthy, and so does a
// cancelled push: the upload stops between requests and waits for those in
// flight (a push that does not stop in time has its connection closed by
// the CancelGrace watcher, which marks it broken).
func isConnError(err error) bool {
	var se *sftp.StatusError
	switch {
	case errors.As(err, &se), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrChecksumMismatch), errors.Is(err, ErrTargetDiskFull),
		errors.Is(err, ErrSourceChanged), errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return false
	}
	return true
}

// Push implements Transport. See the package documentation for the protocol
// (partial file, resume, verification, rename) and what is left behind on
// each kind of failure.
func (t *SFTPTransport) Push(ctx context.Context, file LocalFile, target Target) (rc Receipt, err error) {
	remote, err := remotePath(target.RemoteDir, file.RemoteName)
	if err != nil {
		return Receipt{}, err
	}
	op := "connect"
	defer func() {
		if err != nil {
			err = &PushError{NodeID: target.NodeID, Addr: target.Endpoint.Addr(), File: file.Path, Op: op, Err: err}
		}
	}()
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	c, err := t.acquire(ctx, target)
	if err != nil {
		return Receipt{}, err
	}
	defer func() { t.release(c, err) }()

	// A push that does not stop soon after its context ends (a stalled
	// network) gets its connection closed under it.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		timer := time.NewTimer(t.opts.CancelGrace)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			c.close()
		}
	}()

	p := &sftpPush{t: t, c: c, ctx: ctx, file: file, target: target, remote: remote, partial: remote + PartialSuffix, op: &op}
	if file.Pages != nil {
		rc, err = p.runDB()
	} else {
		rc, err = p.run()
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return rc, err
}

type sftpPush struct {
	t       *SFTPTransport
	c       *sftpConn
	ctx     context.Context
	file    LocalFile
	target  Target
	remote  string
	partial string
	op      *string
}

func (p *sftpPush) run() (Receipt, error) {
	sc := p.c.sc
	*p.op = "open local file"
	lf, err := os.Open(p.file.Path)
	if err != nil {
		return Receipt{}, err
	}
	defer lf.Close()
	before, err := lf.Stat()
	if err != nil {
		return Receipt{}, err
	}
	size := before.Size()
	if p.file.Size > 0 && p.file.Size != size {
		return Receipt{}, fmt.Errorf("%w: size is %d bytes, expected %d", ErrSourceChanged, size, p.file.Size)
	}
	if !p.file.ModTime.IsZero() && !p.file.ModTime.Equal(before.ModTime()) {
		return Receipt{}, fmt.Errorf("%w: mtime is %s, expected %s", ErrSourceChanged,
			before.ModTime().Format(time.RFC3339Nano), p.file.ModTime.Format(time.RFC3339Nano))
	}

	dir := path.Dir(p.remote)
	if _, ok := p.c.dirs.Load(dir); !ok {
		*p.op = "create remote directory"
		if err := sc.MkdirAll(dir); err != nil {
			return Receipt{}, err
		}
		p.c.dirs.Store(dir, true)
	}

	// The three lookups are independent: one round trip instead of three.
	*p.op = "stat remote"
	var (
		wg                   sync.WaitGroup
		finalFI, partialFI   os.FileInfo
		finalErr, partialErr error
		free                 int64
		freeOK               bool
	)
	checkExisting := p.file.SHA256 != "" && (size < p.t.opts.ExecHashMinSize || p.c.execMode.Load() != execUnavailable)
	wg.Add(2)
	go func() { defer wg.Done(); partialFI, partialErr = sc.Stat(p.partial) }()
	go func() { defer wg.Done(); free, freeOK = p.freeSpace() }()
	if checkExisting {
		wg.Add(1)
		go func() { defer wg.Done(); finalFI, finalErr = sc.Stat(p.remote) }()
	}
	wg.Wait()

	// Already there (a receipt lost in a crash, or a second target path to
	// the same store): verify instead of sending again.
	if checkExisting && finalErr == nil && finalFI.Size() == size {
		*p.op = "verify existing remote file"
		if sum, err := p.remoteSHA256(p.remote, size, true); err == nil && sum == p.file.SHA256 {
			return p.receipt(sum, size, 0, size), nil
		}
	}

	var have int64
	if partialErr == nil {
		have = partialFI.Size()
	} else if !errors.Is(partialErr, os.ErrNotExist) {
		*p.op = "stat partial"
		return Receipt{}, partialErr
	}
	if have > size {
		have = 0
	}

	if freeOK {
		need := size - have + p.target.MinFreeBytes
		if free < need {
			*p.op = "check free space"
			return Receipt{}, fmt.Errorf("%w: %s has %s free under %s, %s needed (%s of file + %s reserve); existing partial (%d bytes) kept for resume",
				ErrTargetDiskFull, p.target.NodeID, fmtBytes(free), dir, fmtBytes(need),
				fmtBytes(size-have), fmtBytes(p.target.MinFreeBytes), have)
		}
	}

	*p.op = "open partial"
	flags := os.O_WRONLY | os.O_CREATE
	if have == 0 {
		flags |= os.O_TRUNC
	}
	rf, err := sc.OpenFile(p.partial, flags)
	if errors.Is(err, os.ErrNotExist) {
		// The directory went away since it was cached.
		p.c.dirs.Delete(dir)
		if err = sc.MkdirAll(dir); err == nil {
			p.c.dirs.Store(dir, true)
			rf, err = sc.OpenFile(p.partial, flags)
		}
	}
	if err != nil {
		return Receipt{}, err
	}
	closed := false
	defer func() {
		if !closed {
			_ = rf.Close()
		}
	}()

	h := sha256.New()
	offset := int64(0)
	if have > 0 {
		*p.op = "verify partial"
		offset, h, err = p.verifyPrefix(lf, rf, have)
		if err != nil {
			return Receipt{}, err
		}
	}

	*p.op = "upload"
	if _, err := lf.Seek(offset, io.SeekStart); err != nil {
		return Receipt{}, err
	}
	if _, err := rf.Seek(offset, io.SeekStart); err != nil {
		return Receipt{}, err
	}
	remaining := size - offset
	pr := &pushReader{
		ctx:      p.ctx,
		r:        io.LimitReader(lf, remaining),
		h:        h,
		lim:      p.t.lims.get(p.target.NodeID, p.target.BandwidthLimit),
		onWait:   p.t.opts.OnThrottle,
		nodeID:   p.target.NodeID,
		progress: p.file.Progress,
	}
	n, werr := rf.ReadFromWithConcurrency(pr, p.t.opts.Concurrency)
	if werr == nil {
		if serr := rf.Sync(); serr != nil && !isUnsupported(serr) {
			werr = serr
		}
	}
	cerr := rf.Close()
	closed = true
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		if ctxErr := p.ctx.Err(); ctxErr != nil {
			return Receipt{}, fmt.Errorf("%w after %d of %d bytes; partial kept for resume", ctxErr, offset+pr.sent, size)
		}
		if p.diskFull(werr, size-offset-pr.sent) {
			_ = sc.Remove(p.partial)
			return Receipt{}, fmt.Errorf("%w: %s ran out of space writing %s after %d of %d bytes (%v); partial removed to give the space back",
				ErrTargetDiskFull, p.target.NodeID, p.partial, offset+pr.sent, size, werr)
		}
		return Receipt{}, fmt.Errorf("%w (after %d of %d bytes; partial kept for resume)", werr, offset+pr.sent, size)
	}
	if n != remaining {
		_ = sc.Remove(p.partial)
		return Receipt{}, fmt.Errorf("%w: read %d bytes, expected %d", ErrSourceChanged, offset+n, size)
	}

	*p.op = "check source"
	sent := hex.EncodeToString(h.Sum(nil))
	after, err := os.Stat(p.file.Path)
	if err != nil || after.Size() != size || !after.ModTime().Equal(before.ModTime()) {
		_ = sc.Remove(p.partial)
		return Receipt{}, fmt.Errorf("%w: %s was modified while being sent", ErrSourceChanged, p.file.Path)
	}
	if p.file.SHA256 != "" && sent != p.file.SHA256 {
		_ = sc.Remove(p.partial)
		return Receipt{}, fmt.Errorf("%w: content hashes to %s, manifest says %s", ErrSourceChanged, sent, p.file.SHA256)
	}

	*p.op = "verify remote checksum"
	got, err := p.remoteSHA256(p.partial, size, false)
	if err != nil {
		return Receipt{}, err
	}
	if got != sent {
		_ = sc.Remove(p.partial)
		return Receipt{}, fmt.Errorf("%w: %s on %s hashes to %s, sent %s; partial removed, not renamed into place",
			ErrChecksumMismatch, p.partial, p.target.NodeID, got, sent)
	}

	*p.op = "rename into place"
	if err := p.rename(); err != nil {
		return Receipt{}, err
	}
	return p.receipt(got, size, pr.sent, offset), nil
}

func (p *sftpPush) receipt(sum string, size, sent, resumed int64) Receipt {
	return Receipt{
		NodeID:           p.target.NodeID,
		SHA256:           sum,
		Size:             size,
		VerifiedAt:       time.Now().UTC(),
		RemotePath:       p.remote,
		Transport:        "sftp",
		BytesSent:        sent,
		ResumedFrom:      resumed,
		SourceSize:       p.file.SourceSize,
		SourceModTime:    p.file.SourceModTime,
		SourceWALSize:    p.file.SourceWALSize,
		SourceWALModTime: p.file.SourceWALModTime,
	}
}

// verifyPrefix decides where to resume a partial of have bytes. It hashes
// the local prefix and compares it with the remote partial's hash: the whole
// partial first, then (after truncating it) have-ResumeWindow bytes, else it
// truncates the partial to zero. It returns the offset and the hash state of
// the local file at that offset.
func (p *sftpPush) verifyPrefix(lf *os.File, rf *sftp.File, have int64) (int64, hash.Hash, error) {
	win := p.t.opts.ResumeWindow
	fallback := have - win
	if pk := int64(p.t.opts.MaxPacket); fallback > 0 {
		fallback -= fallback % pk
	}
	if fallback < 0 {
		fallback = 0
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(lf, 0, fallback)); err != nil {
		return 0, nil, err
	}
	atFallback, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return 0, nil, err
	}
	if _, err := io.Copy(h, io.NewSectionReader(lf, fallback, have-fallback)); err != nil {
		return 0, nil, err
	}
	local := hex.EncodeToString(h.Sum(nil))
	remote, err := p.remoteSHA256(p.partial, have, false)
	if err != nil {
		return 0, nil, err
	}
	if remote == local {
		return have, h, nil
	}
	p.t.opts.Logger.Warn().Str("target", p.target.NodeID).Str("partial", p.partial).Int64("bytes", have).
		Msg("partial does not match the local prefix; retrying from an earlier offset")
	if fallback > 0 {
		if err := rf.Truncate(fallback); err != nil {
			return 0, nil, err
		}
		h2 := sha256.New()
		if err := h2.(encoding.BinaryUnmarshaler).UnmarshalBinary(atFallback); err != nil {
			return 0, nil, err
		}
		localFB := hex.EncodeToString(h2.Sum(nil))
		remoteFB, err := p.remoteSHA256(p.partial, fallback, false)
		if err != nil {
			return 0, nil, err
		}
		if remoteFB == localFB {
			return fallback, h2, nil
		}
	}
	if err := rf.Truncate(0); err != nil {
		return 0, nil, err
	}
	return 0, sha256.New(), nil
}

func (p *sftpPush) rename() error {
	sc := p.c.sc
	if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
		return sc.PosixRename(p.partial, p.remote)
	}
	// SFTP v3 rename refuses to overwrite: remove first. Not atomic; a crash
	// in between leaves only the verified partial, which the next push
	// verifies and renames.
	if err := sc.Remove(p.remote); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return sc.Rename(p.partial, p.remote)
}

// freeSpace returns the bytes available to the login user under the remote
// directory, when the server implements statvfs@openssh.com.
func (p *sftpPush) freeSpace() (int64, bool) {
	sc := p.c.sc
	if _, ok := sc.HasExtension("statvfs@openssh.com"); !ok {
		return 0, false
	}
	st, err := sc.StatVFS(path.Dir(p.remote))
	if err != nil {
		return 0, false
	}
	bs := st.Frsize
	if bs == 0 {
		bs = st.Bsize
	}
	return int64(bs * st.Bavail), true
}

// diskFull decides whether a failed write means the target is out of space:
// the error says so (pkg/sftp servers pass ENOSPC text through), or
// (OpenSSH answers a plain "Failure") statvfs shows less room than still
// needed.
func (p *sftpPush) diskFull(err error, stillNeeded int64) bool {
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"no space left", "enospc", "disk quota", "quota exceeded", "file too large"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		return false
	}
	free, ok := p.freeSpace()
	return ok && free < stillNeeded+p.target.MinFreeBytes+1
}

// remoteSHA256 hashes a remote file of size bytes on the target: with
// "sha256sum" over an SSH exec channel when the file is at least
// ExecHashMinSize and the server allows exec (no data crosses the network),
// else by reading the file back over SFTP. onlyExec forbids reading back a
// file of ExecHashMinSize or more.
func (p *sftpPush) remoteSHA256(remote string, size int64, onlyExec bool) (string, error) {
	if size >= p.t.opts.ExecHashMinSize && p.c.execMode.Load() != execUnavailable {
		sum, err := execSHA256(p.ctx, p.c.ssh, remote)
		if err == nil {
			p.c.execMode.Store(execWorks)
			return sum, nil
		}
		if p.ctx.Err() != nil {
			return "", p.ctx.Err()
		}
		if p.c.execMode.Load() == execUnknown {
			p.t.opts.Logger.Debug().Err(err).Str("target", p.target.NodeID).
				Msg("remote sha256sum unavailable; verifying by reading back over SFTP")
			p.c.execMode.Store(execUnavailable)
		}
	}
	if onlyExec && size >= p.t.opts.ExecHashMinSize {
		return "", errors.New("remote sha256sum unavailable")
	}
	f, err := p.c.sc.Open(remote)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := f.WriteTo(h); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// execSHA256 runs sha256sum on the remote file over an exec channel.
func execSHA256(ctx context.Context, client *ssh.Client, remote string) (string, error) {
	out, err := runRemote(ctx, client, "sha256sum -- "+shellQuote(remote))
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) == 0 || len(f[0]) != 64 {
		return "", fmt.Errorf("unexpected sha256sum output %q", out)
	}
	if _, err := hex.DecodeString(f[0]); err != nil {
		return "", fmt.Errorf("unexpected sha256sum output %q", out)
	}
	return strings.ToLower(f[0]), nil
}

// runRemote runs cmd over an SSH exec channel and returns its stdout.
func runRemote(ctx context.Context, client *ssh.Client, cmd string) (string, error) {
	sess, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	defer stop()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if err := sess.Run(cmd); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("remote %q: %w: %s", cmd, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isUnsupported(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported
}

func fmtBytes(n int64) string { return route.FormatBytes(n) }
