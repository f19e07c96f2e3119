package sshtest

import (
	"io"
	"os"
	"syscall"
	"time"

	"github.com/pkg/sftp"
)

// fsHandler serves Server.Root through sftp.NewRequestServer and applies the
// server's fault knobs to writes and statvfs.
type fsHandler struct{ s *Server }

var (
	_ sftp.FileReader           = (*fsHandler)(nil)
	_ sftp.OpenFileWriter       = (*fsHandler)(nil)
	_ sftp.PosixRenameFileCmder = (*fsHandler)(nil)
	_ sftp.StatVFSFileCmder     = (*fsHandler)(nil)
	_ sftp.LstatFileLister      = (*fsHandler)(nil)
	_ sftp.ReadlinkFileLister   = (*fsHandler)(nil)
)

func (h *fsHandler) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	return os.Open(h.s.LocalPath(r.Filepath))
}

func (h *fsHandler) Filewrite(r *sftp.Request) (io.WriterAt, error) { return h.open(r) }

func (h *fsHandler) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) { return h.open(r) }

func (h *fsHandler) open(r *sftp.Request) (*faultyFile, error) {
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
	f, err := os.OpenFile(h.s.LocalPath(r.Filepath), flags, 0o644)
	if err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	corrupt := h.s.corruptAt
	h.s.corruptAt = -1
	h.s.mu.Unlock()
	return &faultyFile{File: f, s: h.s, corruptAt: corrupt}, nil
}

func (h *fsHandler) Filecmd(r *sftp.Request) error {
	p := h.s.LocalPath(r.Filepath)
	switch r.Method {
	case "Setstat":
		flags, attrs := r.AttrFlags(), r.Attributes()
		if flags.Size {
			if err := os.Truncate(p, int64(attrs.Size)); err != nil {
				return err
			}
		}
		if flags.Permissions {
			if err := os.Chmod(p, attrs.FileMode().Perm()); err != nil {
				return err
			}
		}
		if flags.Acmodtime {
			if err := os.Chtimes(p, time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0)); err != nil {
				return err
			}
		}
		return nil
	case "Rename":
		// SFTP v3 rename (and OpenSSH's implementation of it) refuses to
		// overwrite an existing file.
		if _, err := os.Lstat(h.s.LocalPath(r.Target)); err == nil {
			return os.ErrExist
		}
		return os.Rename(p, h.s.LocalPath(r.Target))
	case "Rmdir", "Remove":
		return os.Remove(p)
	case "Mkdir":
		return os.Mkdir(p, 0o755)
	case "Link":
		return os.Link(p, h.s.LocalPath(r.Target))
	case "Symlink":
		return os.Symlink(r.Filepath, h.s.LocalPath(r.Target))
	}
	return sftp.ErrSSHFxOpUnsupported
}

func (h *fsHandler) PosixRename(r *sftp.Request) error {
	return os.Rename(h.s.LocalPath(r.Filepath), h.s.LocalPath(r.Target))
}

func (h *fsHandler) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	if h.s.opts.DisableStatVFS {
		return nil, sftp.ErrSSHFxOpUnsupported
	}
	h.s.mu.Lock()
	free := h.s.freeBytes
	h.s.mu.Unlock()
	if free < 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(h.s.LocalPath(r.Filepath), &st); err != nil {
			return nil, err
		}
		return &sftp.StatVFS{
			Bsize: uint64(st.Bsize), Frsize: uint64(st.Frsize), Blocks: st.Blocks,
			Bfree: st.Bfree, Bavail: st.Bavail, Files: st.Files, Ffree: st.Ffree,
			Favail: st.Ffree, Namemax: uint64(st.Namelen),
		}, nil
	}
	const bs = 4096
	blocks := uint64(free)/bs + 1<<20
	return &sftp.StatVFS{
		Bsize: bs, Frsize: bs, Blocks: blocks, Bfree: uint64(free) / bs, Bavail: uint64(free) / bs,
		Files: 1 << 20, Ffree: 1 << 19, Favail: 1 << 19, Namemax: 255,
	}, nil
}

func (h *fsHandler) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	p := h.s.LocalPath(r.Filepath)
	switch r.Method {
	case "List":
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		infos := make([]os.FileInfo, 0, len(entries))
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				continue
			}
			infos = append(infos, fi)
		}
		return listerAt(infos), nil
	case "Stat":
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		return listerAt{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

func (h *fsHandler) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, err := os.Lstat(h.s.LocalPath(r.Filepath))
	if err != nil {
		return nil, err
	}
	return listerAt{fi}, nil
}

func (h *fsHandler) Readlink(p string) (string, error) {
	return os.Readlink(h.s.LocalPath(p))
}

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

// faultyFile is an *os.File whose writes pass the server's fault knobs.
type faultyFile struct {
	*os.File
	s         *Server
	corruptAt int64
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	f.s.mu.Lock()
	delay := f.s.writeDelay
	if f.s.failBudget >= 0 {
		if int64(len(p)) > f.s.failBudget {
			f.s.failBudget = 0
			f.s.mu.Unlock()
			return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		}
		f.s.failBudget -= int64(len(p))
	}
	f.s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if c := f.corruptAt; c >= off && c < off+int64(len(p)) {
		q := append([]byte(nil), p...)
		q[c-off] ^= 0xff
		p = q
	}
	n, err := f.File.WriteAt(p, off)
	f.s.written.Add(int64(n))
	return n, err
}
