// Package deptest holds the dependency rules of the three binaries as tests,
// in the style of tailscale's tstest/deptest: it lists what each binary
// links with `go list -deps -json` and fails when a binary links a package
// it must not (meshctl: no nats-server, memberlist, SQLite, bbolt or cloud
// SDK; the agent: no cloud SDK, no nats-server, no coordinator code), or
// when a package on the coordinator side imports pkg/agent. It has no code
// of its own.
package deptest
