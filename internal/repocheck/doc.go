// Package repocheck holds the repository-wide tests, in the style of
// tailscale's pkgdoc_test.go: every Go package has a package doc comment, no
// file refers to anything outside the repository, relative links in the
// Markdown files resolve, and the release definitions (.goreleaser.yaml,
// scripts/build-release.sh, Dockerfile) stamp the variables that pkg/version
// really has. It has no code of its own.
package repocheck
