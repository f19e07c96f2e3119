package config

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// mergeDoc shares defaults the ways operators do: an x- anchor section,
// a host that is an anchor, a list of merges, an alias for a whole host,
// nested merges and explicit overrides written before and after <<.
const mergeDoc = `x-defaults:
  gpu: &gpu
    provider: vast
    is_ephemeral: true
    ssh_key: ~/.ssh/id_cluster
    ssh_user: root
    storage_paths: {games: /workspace/games}
  cheap: &cheap
    provider: runpod
    gpu: RTX 3090
    ssh_port: 2222
  layered: &layered
    <<: *gpu
    gpu: RTX 4090
hosts:
  vast-1: &base
    <<: *gpu
    ssh_host: ssh1.vast.ai
    ssh_port: 10001
  vast-2: *base
  vast-3:
    ssh_port: 10003
    <<: [*gpu, *cheap]
    ssh_host: ssh3.vast.ai
  runpod-4:
    <<: [*cheap, *gpu]
    is_ephemeral: false
  vast-5:
    <<: *layered
    storage_paths: {models: /workspace/models}
p2p_voters: [vast-1]
`

// TestMergeKeysFollowYAML loads the document and compares every host with
// what the yaml package itself makes of it (it implements merge keys as
// the YAML spec defines them), plus the values written out by hand.
func TestMergeKeysFollowYAML(t *testing.T) {
	inv, err := Parse("merge.yaml", []byte(mergeDoc))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Warnings) != 0 {
		t.Fatalf("warnings: %v", inv.Warnings)
	}
	var oracle struct {
		Hosts map[string]Host `yaml:"hosts"`
	}
	if err := yaml.Unmarshal([]byte(mergeDoc), &oracle); err != nil {
		t.Fatal(err)
	}
	if len(inv.Hosts) != len(oracle.Hosts) {
		t.Fatalf("hosts %v, yaml has %d", inv.Names(), len(oracle.Hosts))
	}
	for name, want := range oracle.Hosts {
		got := *inv.Hosts[name]
		got.Name, got.Pos, got.Extra, got.ProviderExplicit = "", Pos{}, nil, false
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n yaml %+v", name, got, want)
		}
	}
	type exp struct {
		provider, key, user, host, gpu string
		port                           int
		ephemeral                      bool
		games, models                  string
	}
	cases := map[string]exp{
		"vast-1":   {"vast", "~/.ssh/id_cluster", "root", "ssh1.vast.ai", "", 10001, true, "/workspace/games", ""},
		"vast-2":   {"vast", "~/.ssh/id_cluster", "root", "ssh1.vast.ai", "", 10001, true, "/workspace/games", ""},
		"vast-3":   {"vast", "~/.ssh/id_cluster", "root", "ssh3.vast.ai", "RTX 3090", 10003, true, "/workspace/games", ""},
		"runpod-4": {"runpod", "~/.ssh/id_cluster", "root", "", "RTX 3090", 2222, false, "/workspace/games", ""},
		"vast-5":   {"vast", "~/.ssh/id_cluster", "root", "", "RTX 4090", 0, true, "", "/workspace/models"},
	}
	for name, w := range cases {
		h := inv.Hosts[name]
		g := exp{h.Provider, h.SSHKey, h.SSHUser, h.SSHHost, h.GPU, h.SSHPort, h.Ephemeral(), h.StoragePaths.Games, h.StoragePaths.Models}
		if g != w {
			t.Errorf("%s = %+v, want %+v", name, g, w)
		}
		if !h.ProviderExplicit {
			t.Errorf("%s: a merged provider: field is explicit", name)
		}
	}
	if inv.Hosts["vast-2"].Pos.Line != 20 {
		t.Errorf("vast-2 position %v, want its own key's line 20", inv.Hosts["vast-2"].Pos)
	}
}

// Unknown and wrong fields that arrive through a merge are reported where
// they are written, once, however many hosts merge them; unknown ones are
// kept on every host.
func TestMergedFieldsReportedAtTheirSource(t *testing.T) {
	doc := "x-d: &d\n  provider: vast\n  favourite_colour: blue\nhosts:\n  vast-1: {<<: *d}\n  vast-2: {<<: *d}\n  vast-3: *d\n"
	inv, err := Parse("m.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0].String(), "m.yaml:3:3") || !strings.HasSuffix(inv.Warnings[0].Field, ".favourite_colour") {
		t.Fatalf("warnings = %v, want one at m.yaml:3:3", inv.Warnings)
	}
	for _, n := range []string{"vast-1", "vast-2", "vast-3"} {
		if inv.Hosts[n].Extra["favourite_colour"] != "blue" {
			t.Errorf("%s: extra %v", n, inv.Hosts[n].Extra)
		}
	}
	for _, w := range inv.Warnings {
		if strings.Contains(w.Field, "<<") {
			t.Errorf("merge key reported as a field: %v", w)
		}
	}

	_, err = Parse("m.yaml", []byte("x-d: &d\n  ssh_port: nineteen\nhosts:\n  vast-1: {<<: *d}\n  vast-2: {<<: *d}\n"))
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(err.Error(), "m.yaml:2:13") || !strings.Contains(err.Error(), "ssh_port") {
		t.Fatalf("err = %v, want one error at m.yaml:2:13", err)
	}
}

func TestBadMerges(t *testing.T) {
	cases := map[string]struct{ body, want string }{
		"scalar":              {"hosts:\n  vast-1:\n    <<: 5\n", "m.yaml:3:9: hosts.vast-1.<<: merge (<<) needs a mapping"},
		"list of scalar":      {"x: &a {provider: vast}\nhosts:\n  vast-1:\n    <<: [*a, 3]\n", "m.yaml:4:14: hosts.vast-1.<<: a merge list holds mappings"},
		"duplicate in merged": {"x-a: &a\n  provider: vast\n  provider: runpod\nhosts:\n  vast-1: {<<: *a}\n", "m.yaml:3:3: hosts.vast-1.provider: duplicate key (first at line 2)"},
		"alias to list":       {"x: &a [1]\nhosts:\n  vast-1:\n    <<: *a\n", "m.yaml:4:9: hosts.vast-1.<<: merge (<<) needs a mapping or a list of mappings (usually aliases such as *defaults), got an alias to a list"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(c.body))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	// A quoted "<<" is an ordinary key (YAML), hence an unknown field.
	inv, err := Parse("m.yaml", []byte("x-a: &a {provider: runpod}\nhosts:\n  vast-1:\n    \"<<\": *a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Warnings) != 1 || inv.Warnings[0].Field != "hosts.vast-1.<<" || inv.Hosts["vast-1"].Provider != "vast" {
		t.Fatalf("quoted <<: warnings %v provider %s", inv.Warnings, inv.Hosts["vast-1"].Provider)
	}
}

// A document that merges a mapping into itself many times over is
// expanded once per mapping, not exponentially.
func TestMergeBombIsCheap(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 {provider: vast}\n")
	for i := 1; i < 40; i++ {
		b.WriteString("x-" + itoa(i) + ": &a" + itoa(i) + " {<<: [*a" + itoa(i-1) + ", *a" + itoa(i-1) + ", *a" + itoa(i-1) + "]}\n")
	}
	b.WriteString("hosts:\n  vast-1: *a39\n")
	inv, err := Parse("bomb.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Hosts["vast-1"].Provider != "vast" {
		t.Fatalf("provider %q", inv.Hosts["vast-1"].Provider)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestSSHHostWithPortRefused(t *testing.T) {
	cases := map[string]struct {
		host string
		want []string
	}{
		"host:port":         {"ssh6.vast.ai:2222", []string{"h.yaml:4:15", "hosts.vast-1.ssh_host", "holds a port (2222)", "ssh_port says 22", "`ssh_host: ssh6.vast.ai` with `ssh_port: 2222`", "`ssh_host: ssh6.vast.ai` alone"}},
		"user@host:port":    {"root@ssh6.vast.ai:2222", []string{"h.yaml:4:15", "holds a port (2222)"}},
		"ipv4:port":         {"203.0.113.5:22", []string{"holds a port (22)", "`ssh_host: 203.0.113.5` with `ssh_port: 22`"}},
		"bracketed v6:port": {"\"[2001:db8::1]:2222\"", []string{"h.yaml:4:15", "holds a port (2222)", "`ssh_host: 2001:db8::1` with `ssh_port: 2222`"}},
		"bracketed v6":      {"\"[2001:db8::1]\"", []string{"without brackets"}},
		"injection":         {"\"h\\n  ProxyCommand x\"", []string{"not a host name"}},
		"bad user":          {"\"ro ot@h\"", []string{"not a login name"}},
		"ipv6 zone":         {"\"fe80::1%eth0\"", []string{"IPv6 zone (%eth0)"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("h.yaml", []byte("hosts:\n  vast-1:\n    ssh_port: 22\n    ssh_host: "+c.host+"\n"))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	for _, ok := range []string{"2001:db8::1", "root@2001:db8::1", "ssh6.vast.ai", "203.0.113.5", "box_1.internal.", "root@ssh6.vast.ai"} {
		inv, err := Parse("h.yaml", []byte("hosts:\n  vast-1:\n    ssh_port: 2222\n    ssh_host: \""+ok+"\"\n"))
		if err != nil {
			t.Errorf("%s refused: %v", ok, err)
			continue
		}
		host, port, _ := inv.Hosts["vast-1"].SSHEndpoint()
		if port != 2222 || strings.Contains(host, "@") {
			t.Errorf("%s: endpoint %s %d", ok, host, port)
		}
	}
}

func TestVoterListedTwiceWarns(t *testing.T) {
	inv, err := Parse("v.yaml", []byte("p2p_voters: [hetzner-a, hetzner-b, hetzner-a]\nhosts:\n  hetzner-a: {}\n  hetzner-b: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0].String(), "v.yaml:1:36") || !strings.Contains(inv.Warnings[0].Msg, `"hetzner-a" is listed twice`) {
		t.Fatalf("warnings = %v", inv.Warnings)
	}
	if strings.Join(inv.Voters, ",") != "hetzner-a,hetzner-b" {
		t.Fatalf("voters = %v: a duplicate must count once", inv.Voters)
	}
}

// A voter that is not a host is a warning naming it (file:line:column), and
// it is left out of the voters: it has no address and must not count
// towards quorum.
func TestVoterNotAHostWarns(t *testing.T) {
	inv, err := Parse("v.yaml", []byte("p2p_voters: [ghost, a-1]\nhosts:\n  a-1:\n    provider: local\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0].String(), "v.yaml:1:14") || !strings.Contains(inv.Warnings[0].Msg, `"ghost" is not in hosts`) {
		t.Fatalf("warnings = %v", inv.Warnings)
	}
	if strings.Join(inv.Voters, ",") != "a-1" {
		t.Fatalf("voters = %v: a voter that is not a host must not count", inv.Voters)
	}
}
