// Package syncserve is the SFTP server a sync target runs for each node's
// session (docs/security.md, "Sync targets"): `meshctl target setup`
// installs the agent binary inside the sync account's chroot as the
// account's login shell (synctarget.ServerShell), and each node's SSH certificate (signed by
// ringmesh's SSH CA) carries the critical option
// force-command="ringmesh-sync-sftp --node=<node>". sshd runs that command
// through the shell inside the chroot, so the agent binary starts as
// `ringmesh-sync-sftp -c "ringmesh-sync-sftp --node=<node>"` and serves SFTP
// confined to <incoming>/<node>: a node sees and writes only its own
// directory, never another node's copies. The confinement is os.Root (no
// path, "..", or symlink leads out of it) inside sshd's chroot; symlinks
// cannot be made and are not followed out of the node's directory.
package syncserve

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/sftp"

	"github.com/ringmesh/ringmesh/pkg/auth"
	"github.com/ringmesh/ringmesh/pkg/synctarget"
)

// ShellName is the name the agent binary has inside a target's chroot
// (synctarget.ServerShell is its path there, the sync account's shell).
const ShellName = synctarget.ServerName

// RunShell is the entry point when the binary runs as the sync account's
// login shell: args are its arguments after argv[0] (sshd passes "-c"
// and the forced command) and getenv reads the environment sshd set. It
// serves SFTP on stdin/stdout for the node the forced command names and
// returns the exit status. It refuses anything but `-c <force-command>`
// with SSH_ORIGINAL_COMMAND set (sshd sets it only when a forced command
// replaced the client's request: a client cannot choose the node).
func RunShell(args []string, getenv func(string) string, stdin io.Reader, stdout io.WriteCloser, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, ShellName+": "+format+"\n", a...)
		return 1
	}
	if len(args) != 2 || args[0] != "-c" {
		return fail("this account only serves SFTP for ringmesh sync")
	}
	if getenv("SSH_ORIGINAL_COMMAND") == "" {
		return fail("no forced command: log in with a ringmesh sync certificate")
	}
	node, err := auth.ParseSyncForceCommand(args[1])
	if err != nil {
		return fail("%v", err)
	}
	cfg, err := os.ReadFile(synctarget.ServerConfigPath)
	if err != nil {
		return fail("%v", err)
	}
	incoming, err := synctarget.ParseServerConfig(cfg)
	if err != nil {
		return fail("%v", err)
	}
	if err := Serve(struct {
		io.Reader
		io.WriteCloser
	}{stdin, stdout}, incoming, node); err != nil {
		return fail("node %s: %v", node, err)
	}
	return 0
}

// openNodeRoot opens <incoming>/<node> as an os.Root, creating it: it must
// be a real directory, and the directory opened must be the one checked
// (the same inode): a symlink swapped in between by anything that can
// write incoming/ does not redirect the session.
func openNodeRoot(incoming, node string) (*os.Root, error) {
	in, err := os.OpenRoot(incoming)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	if err := in.Mkdir(node, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	before, err := in.Lstat(node)
	if err != nil {
		return nil, err
	}
	if !before.IsDir() {
		return nil, fmt.Errorf("%s is not a directory (%s)", filepath.Join(incoming, node), before.Mode().Type())
	}
	root, err := in.OpenRoot(node)
	if err != nil {
		return nil, err
	}
	after, err := root.Stat(".")
	if err != nil || !os.SameFile(before, after) {
		root.Close()
		return nil, fmt.Errorf("%s changed while it was opened", filepath.Join(incoming, node))
	}
	return root, nil
}

// Serve serves SFTP on rw for node until the client goes away. incoming is
// the incoming directory on this host's file system ("/incoming" inside
// the chroot when sshd runs it); the client sees "/", "/<base of incoming>"
// and "/<base of incoming>/<node>", created on start. Everything under the
// latter is served from <incoming>/<node> through an os.Root; any other
// path is refused with "permission denied". Symlinks cannot be created or
// read, and are not followed out of the node's directory.
func Serve(rw io.ReadWriteCloser, incoming, node string) error {
	if err := auth.ValidSyncNode(node); err != nil {
		return err
	}
	dir := filepath.Join(incoming, node)
	root, err := openNodeRoot(incoming, node)
	if err != nil {
		return err
	}
	defer root.Close()
	visible := "/" + filepath.Base(incoming)
	h := &handler{root: root, dir: dir, incoming: visible, prefix: path.Join(visible, node), node: node}
	srv := sftp.NewRequestServer(rw, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
	defer srv.Close()
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

type handler struct {
	root     *os.Root
	dir      string // the node's directory on the file system
	incoming string // "/incoming" as the client sees it
	prefix   string // "/incoming/<node>"
	node     string
}

var (
	_ sftp.FileReader           = (*handler)(nil)
	_ sftp.OpenFileWriter       = (*handler)(nil)
	_ sftp.PosixRenameFileCmder = (*handler)(nil)
	_ sftp.StatVFSFileCmder     = (*handler)(nil)
	_ sftp.LstatFileLister      = (*handler)(nil)
	_ sftp.ReadlinkFileLister   = (*handler)(nil)
)

// rel maps a client path to a path inside the node's root ("." for the
// root itself), or fs.ErrPermission for anything outside it.
func (h *handler) rel(p string) (string, error) {
	p = path.Clean("/" + p)
	if p == h.prefix {
		return ".", nil
	}
	if r, ok := strings.CutPrefix(p, h.prefix+"/"); ok {
		return r, nil
	}
	return "", fs.ErrPermission
}

// virtual reports whether p is one of the directories above the node's
// root that the client may stat: "/" and the incoming directory.
func (h *handler) virtual(p string) bool {
	p = path.Clean("/" + p)
	return p == "/" || p == h.incoming
}

func (h *handler) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	rel, err := h.rel(r.Filepath)
	if err != nil {
		return nil, err
	}
	return h.root.Open(rel)
}

func (h *handler) Filewrite(r *sftp.Request) (io.WriterAt, error) { return h.open(r) }

func (h *handler) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) { return h.open(r) }

func (h *handler) open(r *sftp.Request) (*syncedFile, error) {
	rel, err := h.rel(r.Filepath)
	if err != nil {
		return nil, err
	}
	pf := r.Pflags()
	flags := os.O_RDWR
	if pf.Creat {
		flags |= os.O_CREATE
	}
	if pf.Trunc {
		flags |= os.O_TRUNC
	}
	if pf.Excl {
		flags |= os.O_EXCL
	}
	f, err := h.root.OpenFile(rel, flags, 0o640)
	if err != nil {
		return nil, err
	}
	if err := singleLink(f); err != nil {
		f.Close()
		return nil, err
	}
	return &syncedFile{File: f}, nil
}

// singleLink refuses writes to a file with more than one name: a hard link
// made from elsewhere (by anything that could write there before) must
// not carry this node's writes to another name. The sync protocol itself
// never writes a file while it has two names.
func singleLink(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && fi.Mode().IsRegular() {
		return fmt.Errorf("%s has %d names: not written: %w", fi.Name(), st.Nlink, fs.ErrPermission)
	}
	return nil
}

// syncedFile is a file opened for writing: it is fsynced when closed (the
// SFTP server offers no fsync@openssh.com; a verified copy must survive
// the target's crash).
type syncedFile struct{ *os.File }

func (f *syncedFile) Close() error {
	serr := f.File.Sync()
	if err := f.File.Close(); err != nil {
		return err
	}
	return serr
}

func (h *handler) Filecmd(r *sftp.Request) error {
	rel, err := h.rel(r.Filepath)
	if err != nil {
		return err
	}
	switch r.Method {
	case "Setstat":
		flags, attrs := r.AttrFlags(), r.Attributes()
		if flags.Size {
			f, err := h.root.OpenFile(rel, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if err := singleLink(f); err != nil {
				f.Close()
				return err
			}
			terr := f.Truncate(int64(attrs.Size))
			if err := f.Close(); terr == nil {
				terr = err
			}
			if terr != nil {
				return terr
			}
		}
		// The node's own directory keeps its mode (a node must not lock
		// itself out); elsewhere no bits beyond 0750.
		if flags.Permissions && rel != "." {
			if err := h.root.Chmod(rel, attrs.FileMode().Perm()&0o750); err != nil {
				return err
			}
		}
		if flags.Acmodtime {
			if err := h.root.Chtimes(rel, time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0)); err != nil {
				return err
			}
		}
		return nil
	case "Rename":
		to, err := h.rel(r.Target)
		if err != nil {
			return err
		}
		// SFTP v3 rename (as OpenSSH implements it) does not overwrite.
		if _, err := h.root.Lstat(to); err == nil {
			return fs.ErrExist
		}
		return h.root.Rename(rel, to)
	case "Rmdir", "Remove":
		if rel == "." {
			return fs.ErrPermission
		}
		return h.root.Remove(rel)
	case "Mkdir":
		if rel == "." {
			return fs.ErrExist
		}
		return h.root.Mkdir(rel, 0o750)
	case "Link":
		to, err := h.rel(r.Target)
		if err != nil {
			return err
		}
		return h.root.Link(rel, to)
	case "Symlink":
		return fs.ErrPermission
	}
	return sftp.ErrSSHFxOpUnsupported
}

func (h *handler) PosixRename(r *sftp.Request) error {
	from, err := h.rel(r.Filepath)
	if err != nil {
		return err
	}
	to, err := h.rel(r.Target)
	if err != nil {
		return err
	}
	if from == "." || to == "." {
		return fs.ErrPermission
	}
	return h.root.Rename(from, to)
}

func (h *handler) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	if _, err := h.rel(r.Filepath); err != nil && !h.virtual(r.Filepath) {
		return nil, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(h.dir, &st); err != nil {
		return nil, err
	}
	return &sftp.StatVFS{
		Bsize: uint64(st.Bsize), Frsize: uint64(st.Frsize), Blocks: st.Blocks,
		Bfree: st.Bfree, Bavail: st.Bavail, Files: st.Files, Ffree: st.Ffree,
		Favail: st.Ffree, Namemax: uint64(st.Namelen),
	}, nil
}

func (h *handler) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		if h.virtual(r.Filepath) {
			if path.Clean("/"+r.Filepath) == "/" {
				return listerAt{dirInfo(path.Base(h.incoming))}, nil
			}
			return listerAt{dirInfo(h.node)}, nil
		}
		rel, err := h.rel(r.Filepath)
		if err != nil {
			return nil, err
		}
		d, err := h.root.Open(rel)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		entries, err := d.ReadDir(-1)
		if err != nil {
			return nil, err
		}
		infos := make([]os.FileInfo, 0, len(entries))
		for _, e := range entries {
			if fi, err := e.Info(); err == nil {
				infos = append(infos, fi)
			}
		}
		return listerAt(infos), nil
	case "Stat":
		return h.stat(r.Filepath, false)
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

func (h *handler) Lstat(r *sftp.Request) (sftp.ListerAt, error) { return h.stat(r.Filepath, true) }

func (h *handler) stat(p string, l bool) (sftp.ListerAt, error) {
	if h.virtual(p) {
		return listerAt{dirInfo(path.Base(path.Clean("/" + p)))}, nil
	}
	rel, err := h.rel(p)
	if err != nil {
		return nil, err
	}
	var fi os.FileInfo
	if l {
		fi, err = h.root.Lstat(rel)
	} else {
		fi, err = h.root.Stat(rel)
	}
	if err != nil {
		return nil, err
	}
	return listerAt{fi}, nil
}

func (h *handler) Readlink(string) (string, error) { return "", fs.ErrPermission }

type listerAt []os.FileInfo

func (l listerAt) ListAt(ls []os.FileInfo, offset int64) (int, error) {
	if offset >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(ls, l[offset:])
	if n < len(ls) {
		return n, io.EOF
	}
	return n, nil
}

// dirInfo describes a directory above the node's root.
type dirInfo string

func (d dirInfo) Name() string       { return string(d) }
func (d dirInfo) Size() int64        { return 0 }
func (d dirInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (d dirInfo) ModTime() time.Time { return time.Time{} }
func (d dirInfo) IsDir() bool        { return true }
func (d dirInfo) Sys() any           { return nil }
