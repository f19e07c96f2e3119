// Package gossipflags is the gossip part of the command lines of the agent
// and the coordinator: the --gossip-* flags and the gossip.Config they
// build. It is apart from pkg/cli so that meshctl, which uses pkg/cli but
// is not a gossip member, does not link memberlist.
package gossipflags

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/cli"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/gossip"
)

// Flags are the gossip flags shared by agent and coordinator.
type Flags struct {
	Listen    *string
	Advertise *string
	KeyFile   *string
	Profile   *string
	Cluster   *string
	Seeds     *string
}

// Add registers the gossip flags on fs.
func Add(fs *flag.FlagSet) Flags {
	return Flags{
		Listen:    fs.String("gossip-listen", "", "memberlist bind address host:port, e.g. 0.0.0.0:7946 (empty = no gossip)"),
		Advertise: fs.String("gossip-advertise", "", "address other members use to reach this one host:port (required when listening on 0.0.0.0)"),
		KeyFile:   fs.String("gossip-key-file", "", "file holding base64 AES keys (16/24/32 bytes), one per line, the first used to send; re-read every 10 s for rotation; or $RINGMESH_GOSSIP_KEY. Required outside --dev"),
		Profile:   fs.String("gossip-profile", "cluster", "memberlist timing profile: cluster (tuned for ringmesh: probe 700 ms, timeout 400 ms), lan, wan or local"),
		Cluster:   fs.String("cluster-name", "", "gossip cluster label (default: the inventory's cluster_name, else ringmesh)"),
		Seeds:     fs.String("gossip-seeds", "", "seed addresses host:port, comma-separated (default: the voters' gossip_addr from the inventory, else their ssh_host:7946)"),
	}
}

// Config builds a gossip.Config (nil when --gossip-listen is empty). The
// key comes from --gossip-key-file or $RINGMESH_GOSSIP_KEY and is never printed.
func (g Flags) Config(inv *config.Inventory, dev bool) (*gossip.Config, error) {
	if *g.Listen == "" {
		return nil, nil
	}
	host, portS, err := net.SplitHostPort(*g.Listen)
	if err != nil {
		return nil, fmt.Errorf("--gossip-listen: %w", err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return nil, fmt.Errorf("--gossip-listen: bad port %q", portS)
	}
	cfg := &gossip.Config{BindAddr: host, BindPort: port, Profile: gossip.Profile(*g.Profile), Dev: dev}
	if *g.Advertise != "" {
		ah, ap, err := net.SplitHostPort(*g.Advertise)
		if err != nil {
			return nil, fmt.Errorf("--gossip-advertise: %w", err)
		}
		cfg.AdvertiseAddr = ah
		if cfg.AdvertisePort, err = strconv.Atoi(ap); err != nil {
			return nil, fmt.Errorf("--gossip-advertise: bad port %q", ap)
		}
	}
	cfg.ClusterLabel = *g.Cluster
	if cfg.ClusterLabel == "" && inv != nil {
		cfg.ClusterLabel = inv.ClusterName
	}
	if cfg.ClusterLabel == "" {
		cfg.ClusterLabel = "ringmesh"
	}
	keyText := os.Getenv("RINGMESH_GOSSIP_KEY")
	if *g.KeyFile != "" {
		path := *g.KeyFile
		if keyText, err = readKeyFile(path); err != nil {
			return nil, err
		}
		// Rotation: the file is re-read while running (gossip.Config.ReloadKeys).
		cfg.ReloadKeys = func() ([][]byte, error) {
			text, err := readKeyFile(path)
			if err != nil {
				return nil, err
			}
			keys, err := gossip.ParseKeys(text)
			if err != nil {
				return nil, fmt.Errorf("--gossip-key-file %s: %w", path, err)
			}
			return keys, nil
		}
	}
	if keyText != "" {
		keys, err := gossip.ParseKeys(keyText)
		if err != nil {
			return nil, fmt.Errorf("gossip key: %w", err)
		}
		cfg.Keys = keys
	} else if !dev {
		return nil, errors.New("gossip needs an encryption key outside --dev: --gossip-key-file or $RINGMESH_GOSSIP_KEY (make one with `head -c 32 /dev/urandom | base64`)")
	}
	cfg.Seeds = cli.SplitList(*g.Seeds)
	if len(cfg.Seeds) == 0 && !dev {
		// Not in dev/demo: the inventory's voters are real machines elsewhere.
		cfg.Seeds = VoterSeeds(inv)
	}
	return cfg, nil
}

// VoterSeeds returns the voters' gossip addresses from the inventory:
// gossip_addr, else ssh_host:7946.
func VoterSeeds(inv *config.Inventory) []string {
	if inv == nil {
		return nil
	}
	var out []string
	for _, v := range inv.Voters {
		h := inv.Hosts[v]
		if h == nil {
			continue
		}
		if h.GossipAddr != "" {
			out = append(out, h.GossipAddr)
			continue
		}
		if host, _, _ := h.SSHEndpoint(); host != "" {
			out = append(out, net.JoinHostPort(strings.TrimSpace(host), strconv.Itoa(gossip.DefaultPort)))
		}
	}
	return out
}

// readKeyFile reads a gossip keyring file, refusing one that group or
// others may read.
func readKeyFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--gossip-key-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("--gossip-key-file %s has mode %v: must not be readable by group or others", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--gossip-key-file: %w", err)
	}
	return string(b), nil
}
