package meshctl

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTTY reports whether f is a terminal (a TCGETS ioctl succeeds), so a
// prompt is never shown to /dev/null or a pipe.
func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
