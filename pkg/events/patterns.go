package events

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Patterns are the one definition of what a string from the bus may look
// like, by name. A struct field tagged `pattern:"<name>"` gets the pattern
// in its JSON Schema (go generate ./schemas; for a slice, map or struct
// field, every string below it does), and the Valid* helpers below check the
// same expressions where such a string leaves the process: ssh config, ssh
// argv, a terminal, a file path, a metric label.
var Patterns = map[string]string{
	// node: a node ID, also a NATS subject token (mesh.ValidateNodeID).
	"node": `^[A-Za-z0-9_-]{1,64}$`,
	// host: a DNS name or an IP address; no spaces, no leading '-', no quotes.
	"host": `^[A-Za-z0-9:][A-Za-z0-9._:-]{0,252}$`,
	// user: a POSIX login name, or empty (unknown); no leading '-'.
	"user": `^([A-Za-z_][A-Za-z0-9._-]{0,31})?$`,
	// fingerprint: an OpenSSH SHA256 host-key fingerprint.
	"fingerprint": `^SHA256:[A-Za-z0-9+/]{43}$`,
	// fingerprint_opt: a fingerprint, or empty (unknown).
	"fingerprint_opt": `^(SHA256:[A-Za-z0-9+/]{43})?$`,
	// sshkey_opt: an ssh-ed25519 public key in authorized_keys form without
	// comment (a node's own sync key), or empty.
	"sshkey_opt": `^(ssh-ed25519 [A-Za-z0-9+/]{68})?$`,
	// sha256: a hex SHA-256 digest.
	"sha256": `^[0-9a-f]{64}$`,
	// sha256_opt: a hex SHA-256 digest, or empty.
	"sha256_opt": `^([0-9a-f]{64})?$`,
	// path: a file path without spaces, quotes or control characters.
	"path": `^[A-Za-z0-9._+@~/=,-]*$`,
	// token: an identifier-like value (versions, sources, IDs, triggers).
	"token": `^[A-Za-z0-9._:+/@=-]*$`,
	// enroll_token: a one-time enrollment token (pkg/bootstrap): "rme_" and
	// 43 base64url characters (256 random bits).
	"enroll_token": `^rme_[A-Za-z0-9_-]{43}$`,
	// instance_id: a provider instance ID (Vast contract ID, RunPod pod ID, …).
	"instance_id": `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`,
	// nkey_user: a public user nkey (base32, "U" prefix, 56 characters).
	"nkey_user": `^U[A-Z2-7]{55}$`,
	// hostport: "host:port" or "[v6]:port".
	"hostport": `^[A-Za-z0-9._:\[\]-]*$`,
	// text: free text shown to people: no C0/C1 control characters (no
	// newlines, no terminal escapes).
	"text": `^[^\x00-\x1f\x7f-\x9f]*$`,
}

var compiled = func() map[string]*regexp.Regexp {
	out := make(map[string]*regexp.Regexp, len(Patterns))
	for name, p := range Patterns {
		out[name] = regexp.MustCompile(p)
	}
	return out
}()

// Match reports whether s matches the pattern called name; an unknown name never matches.
func Match(name, s string) bool {
	re, ok := compiled[name]
	return ok && re.MatchString(s)
}

// Check returns an error naming what and the pattern unless s matches pattern name.
func Check(what, name, s string) error {
	if Match(name, s) {
		return nil
	}
	return fmt.Errorf("%s %q does not match the %s pattern %s", what, clip(s, 80), name, Patterns[name])
}

// ValidHost reports whether s is a usable SSH host name or address.
func ValidHost(s string) bool { return Match("host", s) }

// ValidUser reports whether s is a non-empty login name that cannot be taken for an option.
func ValidUser(s string) bool { return s != "" && Match("user", s) }

// ValidFingerprint reports whether s is "SHA256:" and 43 base64 characters.
func ValidFingerprint(s string) bool { return Match("fingerprint", s) }

// ValidPath reports whether s is a path without spaces, quotes or control characters.
func ValidPath(s string) bool { return Match("path", s) }

// StripControl removes C0/C1 control characters (terminal escapes,
// newlines, carriage returns) from s, for output to a terminal or a log;
// invalid UTF-8 bytes (a raw 0x9b is CSI to an 8-bit terminal) become U+FFFD.
func StripControl(s string) string {
	if utf8.ValidString(s) && Match("text", s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return -1
		}
		return r
	}, s)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
