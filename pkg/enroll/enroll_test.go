package enroll

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
)

func TestValidPrefix(t *testing.T) {
	for _, p := range []string{"/opt/ringmesh", "/workspace/ringmesh", "~/ringmesh", "~/.local/ringmesh"} {
		if err := ValidPrefix(p); err != nil {
			t.Errorf("ValidPrefix(%q): %v", p, err)
		}
	}
	for _, p := range []string{"", "/", "relative", "/opt/../etc", "/opt/ringmesh/", "/opt/ring mesh", "/opt/$(reboot)", "~/../x", "/opt//x"} {
		if err := ValidPrefix(p); err == nil {
			t.Errorf("ValidPrefix(%q) accepted", p)
		}
	}
}

func TestGoArchAndVersionOf(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "", "riscv64": ""} {
		if got := GoArch(in); got != want {
			t.Errorf("GoArch(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"ringmesh-agent v0.1.0 (commit abc, built x, go1.26.8 linux/amd64)\n": "v0.1.0",
		"ringmesh-agent dev-0123456 (commit …)":                               "dev-0123456",
		"bash: ringmesh-agent: not found":                                     "",
		"ringmesh-agent $(reboot) (x)":                                        "",
		"ringmesh-agent":                                                      "",
	} {
		if got := versionOf(in); got != want {
			t.Errorf("versionOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseProbe(t *testing.T) {
	p, err := parseProbe("Linux\naarch64\nsystemd\n1000\nyes\nno\nringmesh-agent v1.2.3 (commit x)\nrunning\ncreds:\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.os != "Linux" || GoArch(p.arch) != "arm64" || p.pid1 != "systemd" || p.uid != "1000" || !p.systemctl || p.sudo ||
		p.version != "v1.2.3" || !p.running || p.credsKey != "" {
		t.Fatalf("parseProbe: %+v", p)
	}
	if _, err := parseProbe("Linux\nx86_64\n"); err == nil {
		t.Fatal("a short probe answer was accepted")
	}
	if p, _ := parseProbe("Linux\nx86_64\nbash\n0\nno\nno\nnone\nstopped\ncreds:not-a-jwt\n"); p.version != "" || p.credsKey != "" {
		t.Fatalf("no agent, bad creds: %+v", p)
	}
}

func TestChooseMode(t *testing.T) {
	cfg := &Config{}
	if m, _ := cfg.chooseMode(probe{pid1: "systemd", systemctl: true}, true); m != ModeSystemd {
		t.Errorf("root with systemd: %s", m)
	}
	if m, note := cfg.chooseMode(probe{pid1: "systemd", systemctl: true}, false); m != ModeSupervisor || note == "" {
		t.Errorf("no root, no sudo: %s %q", m, note)
	}
	if m, _ := cfg.chooseMode(probe{pid1: "systemd", systemctl: true, sudo: true}, false); m != ModeSystemd {
		t.Errorf("sudo -n: %s", m)
	}
	if m, _ := cfg.chooseMode(probe{pid1: "bash"}, true); m != ModeSupervisor {
		t.Errorf("container: %s", m)
	}
	cfg.Mode = ModeSystemd
	if m, note := cfg.chooseMode(probe{pid1: "tini"}, true); m != "" || !strings.Contains(note, "not PID 1") {
		t.Errorf("--mode systemd in a container: %s %q", m, note)
	}
}

// The host key rules without a network: pinned must match; unpinned is
// trusted only on the reported or accepted fingerprint or a yes, then
// pinned under the node ID (mode 0600).
func TestPins(t *testing.T) {
	k1, _ := sshtest.NewKeyPair()
	k2, _ := sshtest.NewKeyPair()
	key1, key2 := k1.Signer.PublicKey(), k2.Signer.PublicKey()
	fp1 := ssh.FingerprintSHA256(key1)
	file := filepath.Join(t.TempDir(), "ssh", "known")
	pins := NewPins(file)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}

	if err := pins.callback("n1", trust{})("x:22", addr, key1); !errors.Is(err, ErrHostKeyUntrusted) || !strings.Contains(err.Error(), fp1) {
		t.Fatalf("unconfirmed: %v", err)
	}
	if err := pins.callback("n1", trust{expected: ssh.FingerprintSHA256(key2)})("x:22", addr, key1); !errors.Is(err, ErrHostKeyUntrusted) {
		t.Fatalf("reported fingerprint differs: %v", err)
	}
	asked := 0
	no := func(string, string) (bool, error) { asked++; return false, nil }
	if err := pins.callback("n1", trust{confirm: no})("x:22", addr, key1); !errors.Is(err, ErrHostKeyUntrusted) || asked != 1 {
		t.Fatalf("refused at the prompt: %v (asked %d)", err, asked)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("something was pinned without trust: %v", err)
	}
	if err := pins.callback("n1", trust{accepted: fp1})("x:22", addr, key1); err != nil {
		t.Fatalf("accepted: %v", err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pin file: %v %v", fi, err)
	}
	// Pinned now: no prompt, and any other key is a change.
	if err := pins.callback("n1", trust{confirm: no})("x:22", addr, key1); err != nil || asked != 1 {
		t.Fatalf("pinned key: %v (asked %d)", err, asked)
	}
	if err := pins.callback("n1", trust{accepted: ssh.FingerprintSHA256(key2)})("x:22", addr, key2); !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), file) {
		t.Fatalf("changed key: %v", err)
	}
	// Another node is pinned on its own line; algorithms follow the pin.
	yes := func(string, string) (bool, error) { return true, nil }
	if err := pins.callback("n2", trust{confirm: yes})("x:22", addr, key2); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "n1 ssh-ed25519 ") || !strings.HasPrefix(lines[1], "n2 ssh-ed25519 ") {
		t.Fatalf("pin file:\n%s", b)
	}
	if a := pins.algorithms("n1"); len(a) != 1 || a[0] != ssh.KeyAlgoED25519 {
		t.Fatalf("algorithms of a pinned ed25519 node: %v", a)
	}
}

func TestAgentConf(t *testing.T) {
	cfg := &Config{NATSURLs: []string{"tls://a:4222", "tls://b:4222"}, GossipKey: []byte("k\n")}
	l := layout{p: "/opt/ringmesh"}
	conf, notes := cfg.agentConf(Node{Entry: fleet.SSHEntry{Node: "vast-1", Host: "ssh6.vast.ai", Port: 19528, Source: "provider:proxy"},
		Provider: "vast", InstanceID: "29129529", Ephemeral: true}, l,
		&api.SyncSettings{ReplicationTarget: 3, MaxConcurrentSyncs: 2, DataClasses: map[string][]string{"games": {"*.db"}, "checkpoints": {"*.pt", "*.safetensors"}, "bad": {"a b"}}})
	for _, want := range []string{"node=vast-1\n", "nats-url=tls://a:4222,tls://b:4222\n", "creds=/opt/ringmesh/etc/node.creds\n", "sync=on\n", "provider=vast\n", "instance-id=29129529\n",
		"replication-target=3\n", "max-concurrent-syncs=2\n", "data-class=checkpoints=*.pt,*.safetensors\ndata-class=games=*.db\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("agent.conf lacks %q:\n%s", want, conf)
		}
	}
	// The glob with a space is left out (never written into the file), and said.
	if strings.Contains(conf, "gossip") || strings.Contains(conf, "a b") || len(notes) != 2 || !strings.Contains(strings.Join(notes, "\n"), "data class left out") {
		t.Errorf("a proxied node got gossip, or a bad data class: %q %v", conf, notes)
	}
	conf, notes = cfg.agentConf(Node{Entry: fleet.SSHEntry{Node: "hetzner-1", Host: "203.0.113.7", Port: 22, Source: "config"}}, l, nil)
	if !strings.Contains(conf, "gossip-advertise=203.0.113.7:7946\n") || !strings.Contains(conf, "sync=off\n") || len(notes) != 0 {
		t.Errorf("direct node: %q %v", conf, notes)
	}
}
