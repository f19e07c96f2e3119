// Package doccheck has no code: its tests check the operator documentation
// (README.md, deploy/README.md, deploy/examples/*.env) against the
// binaries, so that every flag and environment variable a reader is told
// about is one the binary it names accepts.
package doccheck
