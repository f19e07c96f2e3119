//go:build !unix

package meshsync

import "io/fs"

func inodeOf(fs.FileInfo) uint64 { return 0 }
