//go:build !linux

package meshctl

import "os"

// isTTY reports whether f is a character device (an approximation of a
// terminal outside Linux).
func isTTY(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && f.Name() != os.DevNull
}
