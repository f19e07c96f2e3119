package meshsync

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	// Root is the path inside the filesystem that is mounted (field 4).
	Root string
	// MountPoint is where it is mounted (field 5).
	MountPoint string
	// FSType is the filesystem type ("nfs4", "ext4", "fuse.sshfs", ...).
	FSType string
	// Source is the mount source ("10.0.0.5:/export", "/dev/vda1", ...).
	Source string
}

// ParseMountInfo parses the proc(5) mountinfo format.
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+3 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", line, sc.Text())
		}
		out = append(out, Mount{
			Root:       unescapeMount(f[3]),
			MountPoint: unescapeMount(f[4]),
			FSType:     f[sep+1],
			Source:     unescapeMount(f[sep+2]),
		})
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for space, ...) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, ok := octal3(s[i+1 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	return byte(v), v < 256
}

// fuse filesystems that are per-host plumbing, not shared storage.
var localFuse = map[string]bool{
	"fuse.lxcfs": true, "fuse.gvfsd-fuse": true, "fuse.portal": true, "fuse.snapfuse": true,
	"fuse.xdg-document-portal": true, "fuse.kio-fuse": true, "fuse.appimagekit": true,
}

// sharedFSKind maps a filesystem type to the family used in IDs, or "" for
// filesystems that are not shared between hosts.
func sharedFSKind(fstype string) string {
	switch fstype {
	case "nfs", "nfs4":
		return "nfs"
	case "cifs", "smb3", "smbfs":
		return "cifs"
	case "ceph", "glusterfs", "lustre", "beegfs", "gpfs", "virtiofs":
		return fstype
	}
	if strings.HasPrefix(fstype, "fuse.") && !localFuse[fstype] {
		return fstype
	}
	return ""
}

// SharedFilesystemID returns the ID of a mount when it is a shared
// (network) filesystem: "<kind>:<source>" with the source normalised
// ("nfs:10.0.0.5:/export/data"), plus the mounted sub-path when only part of
// the filesystem is mounted. ok is false for local filesystems.
func SharedFilesystemID(m Mount) (id string, ok bool) {
	kind := sharedFSKind(m.FSType)
	if kind == "" {
		return "", false
	}
	src := m.Source
	if host, p, found := strings.Cut(src, ":"); found && (kind == "nfs") {
		p = filepath.Clean("/" + p)
		if m.Root != "" && m.Root != "/" {
			p = filepath.Join(p, m.Root)
		}
		src = strings.ToLower(host) + ":" + p
	} else if kind == "cifs" {
		src = strings.ToLower(strings.TrimRight(strings.ReplaceAll(src, `\`, "/"), "/"))
		if m.Root != "" && m.Root != "/" {
			src += m.Root
		}
	} else if m.Root != "" && m.Root != "/" {
		src += ":" + m.Root
	}
	return kind + ":" + src, true
}

// SharedFilesystems reads <root>/proc/self/mountinfo (root "" = the real
// one; tests pass a fixture tree) and returns the sorted, de-duplicated IDs
// of the shared filesystems mounted: nfs/nfs4, cifs/smb3, fuse.* (except
// per-host helpers such as lxcfs) and cluster filesystems (ceph, glusterfs,
// lustre, ...). Two nodes reporting a common ID (or NFS IDs where one export
// path contains the other) share storage: a copy on one is not a copy.
func SharedFilesystems(root string) ([]string, error) {
	p := filepath.Join(root, "/proc/self/mountinfo")
	if root == "" {
		p = "/proc/self/mountinfo"
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("shared filesystems: %w", err)
	}
	defer f.Close()
	mounts, err := ParseMountInfo(f)
	if err != nil {
		return nil, fmt.Errorf("shared filesystems: %s: %w", p, err)
	}
	var ids []string
	for _, m := range mounts {
		if id, ok := SharedFilesystemID(m); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
