package gossip

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := testConfig("node-1")
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}

	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error
	}{
		{"empty name", func(c *Config) { c.NodeName = "" }, "config NodeName:"},
		{"bad name", func(c *Config) { c.NodeName = "a.b" }, `config NodeName: "a.b"`},
		{"long name", func(c *Config) { c.NodeName = strings.Repeat("n", 65) }, "config NodeName:"},
		{"bind not IP", func(c *Config) { c.BindAddr = "localhost" }, "config BindAddr:"},
		{"bind port", func(c *Config) { c.BindPort = 70000 }, "config BindPort:"},
		{"wildcard without advertise", func(c *Config) { c.BindAddr = "0.0.0.0" }, "config AdvertiseAddr: required when BindAddr is 0.0.0.0"},
		{"empty bind = wildcard", func(c *Config) { c.BindAddr = "" }, "config AdvertiseAddr: required"},
		{"v6 wildcard", func(c *Config) { c.BindAddr = "::" }, "config AdvertiseAddr: required when BindAddr is ::"},
		{"advertise not IP", func(c *Config) { c.AdvertiseAddr = "gpu1.example" }, "config AdvertiseAddr:"},
		{"advertise unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }, "config AdvertiseAddr:"},
		{"advertise port", func(c *Config) { c.AdvertisePort = -1 }, "config AdvertisePort:"},
		{"profile", func(c *Config) { c.Profile = "fast" }, `config Profile: unknown profile "fast"`},
		{"no label", func(c *Config) { c.ClusterLabel = "" }, "config ClusterLabel: required"},
		{"label too long", func(c *Config) { c.ClusterLabel = strings.Repeat("l", 256) }, "config ClusterLabel: is 256 bytes"},
		{"label space", func(c *Config) { c.ClusterLabel = "my cluster" }, "config ClusterLabel:"},
		{"no key", func(c *Config) { c.Keys = nil }, "config Keys: at least one gossip key is required"},
		{"short key", func(c *Config) { c.Keys = [][]byte{[]byte("short")} }, "config Keys[0]: is 5 bytes"},
		{"dup key", func(c *Config) { c.Keys = [][]byte{testKey, testKey} }, "config Keys[1]: duplicates Keys[0]"},
		{"seed no port", func(c *Config) { c.Seeds = []string{"10.0.0.1"} }, "config Seeds[0]:"},
		{"seed bad port", func(c *Config) { c.Seeds = []string{"ok:7946", "10.0.0.1:0"} }, "config Seeds[1]:"},
		{"seed no host", func(c *Config) { c.Seeds = []string{":7946"} }, "config Seeds[0]:"},
		{"rejoin too short", func(c *Config) { c.RejoinInterval = time.Millisecond }, "config RejoinInterval:"},
		{"reclaim negative", func(c *Config) { c.DeadNodeReclaimTime = -time.Second }, "config DeadNodeReclaimTime:"},
		{"event buffer", func(c *Config) { c.EventBuffer = -1 }, "config EventBuffer:"},
		{"cidr", func(c *Config) { c.AllowedCIDRs = []string{"10.0.0.0/33"} }, "config AllowedCIDRs:"},
		{"meta too big", func(c *Config) { c.Meta.Role = strings.Repeat("r", 600) }, "config Meta: gossip: node meta is"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig("node-1")
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
		})
	}

	t.Run("all errors reported", func(t *testing.T) {
		c := Config{NodeName: "bad name!", BindAddr: "0.0.0.0"}
		err := c.Validate()
		for _, field := range []string{"NodeName", "AdvertiseAddr", "ClusterLabel", "Keys"} {
			if err == nil || !strings.Contains(err.Error(), "config "+field+":") {
				t.Errorf("missing %s in %v", field, err)
			}
		}
	})

	t.Run("dev relaxes", func(t *testing.T) {
		c := Config{NodeName: "dev-1", Dev: true}
		if err := c.Validate(); err != nil {
			t.Fatalf("dev config: %v", err)
		}
	})

	t.Run("wildcard with advertise", func(t *testing.T) {
		c := testConfig("n")
		c.BindAddr, c.AdvertiseAddr = "0.0.0.0", "203.0.113.7"
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		c := Config{}.withDefaults()
		if c.RejoinInterval != 30*time.Second || c.DeadNodeReclaimTime != 30*time.Second || c.Profile != ProfileLAN ||
			c.BindAddr != "0.0.0.0" || c.EventBuffer != 1024 || c.LeaveTimeout != 5*time.Second {
			t.Errorf("defaults = %+v", c)
		}
	})
}

func TestConfigNeverPrintsKeys(t *testing.T) {
	t.Parallel()
	c := testConfig("n")
	if s := c.String(); strings.Contains(s, string(testKey)) || !strings.Contains(s, "Keys:1(redacted)") {
		t.Errorf("String() = %s", s)
	}
}

func TestParseAndGenerateKey(t *testing.T) {
	t.Parallel()
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(s + "\n")
	if err != nil || len(k) != 32 {
		t.Fatalf("ParseKey(GenerateKey()) = %d bytes, %v", len(k), err)
	}
	if _, err := ParseKey("not base64!"); err == nil || strings.Contains(err.Error(), "not base64!") {
		t.Errorf("ParseKey(garbage) = %v (must fail without echoing the input)", err)
	}
	if _, err := ParseKey("c2hvcnQ="); err == nil || !strings.Contains(err.Error(), "is 5 bytes") {
		t.Errorf("ParseKey(short) = %v", err)
	}
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	for p, probe := range map[Profile]time.Duration{"": time.Second, ProfileLAN: time.Second, ProfileWAN: 5 * time.Second, ProfileLocal: time.Second, ProfileCluster: ClusterProbeInterval} {
		mc, err := p.memberlistConfig()
		if err != nil || mc.ProbeInterval != probe {
			t.Errorf("%q: %v %v", p, mc.ProbeInterval, err)
		}
	}
	lan, _ := ProfileLAN.memberlistConfig()
	local, _ := ProfileLocal.memberlistConfig()
	if lan.ProbeTimeout != 500*time.Millisecond || local.ProbeTimeout != 200*time.Millisecond {
		t.Errorf("probe timeouts lan=%s local=%s", lan.ProbeTimeout, local.ProbeTimeout)
	}
}
