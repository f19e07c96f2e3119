package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The seed README's example must load exactly as written.
func TestSeedExampleLoads(t *testing.T) {
	inv, err := LoadFile("testdata/distributed_hosts.seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Hosts) != 2 {
		t.Fatalf("hosts = %d, want 2", len(inv.Hosts))
	}
	v := inv.Hosts["vast-29129529"]
	if v.Provider != "vast" || !v.ProviderExplicit || v.GPUType != "RTX 4090" || !v.Ephemeral() {
		t.Fatalf("vast host = %+v", v)
	}
	host, port, user := v.SSHEndpoint()
	if host != "ssh6.vast.ai" || port != 19528 || user != "root" {
		t.Fatalf("vast ssh = %s:%d %s, want ssh6.vast.ai:19528 root", host, port, user)
	}
	l := inv.Hosts["lambda-gh200-a"]
	if l.Provider != "lambda" || l.SSHKey != "~/.ssh/id_cluster" || l.Ephemeral() {
		t.Fatalf("lambda host = %+v", l)
	}
	if _, _, u := l.SSHEndpoint(); u != "ubuntu" {
		t.Fatalf("lambda default user = %q, want ubuntu", u)
	}
	if len(inv.Warnings) != 0 {
		t.Fatalf("unexpected warnings: %v", inv.Warnings)
	}
}

func TestWideExampleLoads(t *testing.T) {
	inv, err := LoadFile("testdata/distributed_hosts.wide.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(inv.Hosts); got != 8 {
		t.Fatalf("hosts = %d, want 8", got)
	}
	if strings.Join(inv.Voters, ",") != "hetzner-cpu1,hetzner-cpu2,hetzner-cpu3" {
		t.Fatalf("voters = %v", inv.Voters)
	}
	if inv.SyncRouting.ReplicationTarget != 2 || inv.SyncRouting.MinFreeDiskPercent != 15 {
		t.Fatalf("sync_routing = %+v", inv.SyncRouting)
	}
	if len(inv.SyncRouting.ExcludedHosts) != 1 || inv.SyncRouting.ExcludedHosts[0].Name != "hetzner-cpu3" ||
		inv.SyncRouting.ExcludedHosts[0].ReceiveGames == nil || *inv.SyncRouting.ExcludedHosts[0].ReceiveGames {
		t.Fatalf("excluded_hosts = %+v", inv.SyncRouting.ExcludedHosts)
	}
	if inv.AutoSync.HostBandwidthOverrides["vast-*"] != 50 {
		t.Fatalf("auto_sync = %+v", inv.AutoSync)
	}
	cases := map[string]struct{ provider, id string }{
		"hetzner-cpu1":    {"hetzner", "41000001"},
		"vast-12345678":   {"vast", "12345678"},
		"runpod-a100-1":   {"runpod", "xedezhzb9la3ye"},
		"vultr-a100-20gb": {"vultr", "6f2a9c1e-0000-4000-8000-000000000001"},
		"nebius-h100-1":   {"nebius", "computeinstance-e00example0001"},
		"lambda-gh200-1":  {"lambda", ""},
	}
	for name, want := range cases {
		h := inv.Hosts[name]
		if h.Provider != want.provider || h.InstanceID() != want.id {
			t.Errorf("%s: provider %q id %q, want %q %q", name, h.Provider, h.InstanceID(), want.provider, want.id)
		}
	}
	if !inv.Hosts["lambda-gh200-1"].Inactive() {
		t.Error("lambda-gh200-1 has status retired: want inactive")
	}
	if inv.Hosts["runpod-a100-1"].Ephemeral() {
		t.Error("runpod without is_ephemeral must not be ephemeral")
	}
	if !inv.IsVoter("hetzner-cpu2") || inv.IsVoter("vast-12345678") {
		t.Error("IsVoter wrong")
	}
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hosts.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBrokenFilesGivePositions(t *testing.T) {
	cases := map[string]struct {
		body string
		want []string // substrings of the error
	}{
		"bad yaml":         {"hosts:\n  a:\n    ssh_host: [1,\n", []string{":3:5", "invalid YAML"}},
		"wrong type port":  {"hosts:\n  vast-1:\n    ssh_port: nineteen\n", []string{"hosts.yaml:3:15", "hosts.vast-1.ssh_port", "wrong type"}},
		"wrong type bool":  {"hosts:\n  vast-1:\n    is_ephemeral: maybe\n", []string{":3:19", "is_ephemeral"}},
		"invalid node id":  {"hosts:\n  vast 1:\n    provider: vast\n", []string{":2:3", "invalid node ID", "vast 1"}},
		"node id too long": {"hosts:\n  " + strings.Repeat("a", 65) + ":\n    provider: vast\n", []string{":2:3", "invalid node ID"}},
		"duplicate host":   {"hosts:\n  vast-1:\n    ssh_port: 1\n  vast-1:\n    ssh_port: 2\n", []string{":4:3", "duplicate host (first defined at line 2)"}},
		"unknown provider": {"hosts:\n  x-1:\n    provider: aws\n", []string{"hosts.x-1.provider", "unknown provider"}},
		"hosts not map":    {"hosts: [a, b]\n", []string{":1:8", "expected a mapping"}},
		"no hosts":         {"p2p_voters: []\n", []string{"hosts", "missing"}},
		"nested wrong":     {"sync_routing:\n  replication_target: two\nhosts:\n  a: {}\n", []string{":2:23", "sync_routing.replication_target"}},
		"bad host key":     {"hosts:\n  hetzner-1:\n    ssh_host_key: \"ssh-ed25519 AAAA; ProxyCommand x\"\n", []string{":3:19", "hosts.hetzner-1.ssh_host_key", "not a host key fingerprint", "ssh-keygen -lf"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := write(t, c.body)
			_, err := LoadFile(p)
			if err == nil {
				t.Fatal("loaded a broken file")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want config.Errors", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestUnknownFieldsWarnOnceEachAndAreKept(t *testing.T) {
	p := write(t, "hosts:\n  vast-1:\n    provider: vast\n    favourite_colour: blue\n    shoe_size: 44\nmystery: 1\n")
	inv, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Warnings) != 3 {
		t.Fatalf("warnings = %v, want 3", inv.Warnings)
	}
	if inv.Warnings[0].Field != "hosts.vast-1.favourite_colour" || !strings.Contains(inv.Warnings[0].String(), ":4:5") {
		t.Fatalf("first warning = %v", inv.Warnings[0])
	}
	if inv.Hosts["vast-1"].Extra["favourite_colour"] != "blue" {
		t.Fatalf("extra not kept: %v", inv.Hosts["vast-1"].Extra)
	}
}

func TestProviderFieldWinsOverPrefix(t *testing.T) {
	p := write(t, "hosts:\n  vast-oddball:\n    provider: runpod\n  hetzner-cpu9: {}\n  mystery-box: {}\n  vast-42:\n    ssh_host: root@ssh1.vast.ai\n    ssh_port: 4242\n    vast_instance_id: 42\n")
	inv, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Hosts["vast-oddball"].Provider != "runpod" {
		t.Error("explicit provider must win over the name prefix")
	}
	if inv.Hosts["hetzner-cpu9"].Provider != "hetzner" || inv.Hosts["hetzner-cpu9"].ProviderExplicit {
		t.Error("prefix fallback")
	}
	if inv.Hosts["mystery-box"].Provider != "unknown" {
		t.Error("unknown prefix must be unknown, not guessed")
	}
	v := inv.Hosts["vast-42"]
	if h, port, u := v.SSHEndpoint(); h != "ssh1.vast.ai" || port != 4242 || u != "root" || v.InstanceID() != "42" {
		t.Errorf("user@host split / numeric id: %s %d %s %q", h, port, u, v.InstanceID())
	}
}
