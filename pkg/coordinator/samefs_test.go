package coordinator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/agent"
	"github.com/ringmesh/ringmesh/pkg/api"
	"github.com/ringmesh/ringmesh/pkg/config"
	"github.com/ringmesh/ringmesh/pkg/coordinator"
	"github.com/ringmesh/ringmesh/pkg/detect"
	"github.com/ringmesh/ringmesh/pkg/mesh"
	"github.com/ringmesh/ringmesh/pkg/paths"
)

// Mount tables as the kernel writes them (proc(5) mountinfo): two Lambda
// hosts with the region's persistent filesystem mounted over NFS (one at
// Lambda's usual /lambda/nfs/<name>, one elsewhere and with a trailing
// slash on the export), and a Hetzner box with local disks only.
const (
	lambdaAMounts = `22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard,errors=remount-ro
25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:40 / /lambda/nfs/RingRift rw,relatime shared:30 - nfs4 10.19.0.5:/ringrift-us-east rw,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.19.1.7,local_lock=none,addr=10.19.0.5
41 22 0:41 / /proc/cpuinfo rw,nosuid,nodev,relatime shared:31 - fuse.lxcfs lxcfs rw,user_id=0,group_id=0,allow_other
`
	lambdaBMounts = `22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard,errors=remount-ro
25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
44 22 0:44 / /home/ubuntu/shared\040data rw,relatime shared:33 - nfs4 10.19.0.5:/ringrift-us-east/ rw,vers=4.1,rsize=1048576,wsize=1048576,hard,proto=tcp,addr=10.19.0.5
`
	hetznerMounts = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
`
)

// fixtureRoot is a node's filesystem root with its mount table at
// proc/self/mountinfo.
func fixtureRoot(t testing.TB, mountinfo string) string {
	t.Helper()
	root := t.TempDir()
	p := filepath.Join(root, "proc", "self", "mountinfo")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(mountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// Two Lambda agents on one NFS share, a Hetzner agent with local disks and
// a coordinator on a real embedded NATS server: each agent reports what
// its mount table says, and the router never picks the other Lambda host
// as a copy of the ephemeral one (a copy on the same share is no copy);
// the Hetzner host is picked instead.
func TestSameFilesystemNodesAreNotRoutedToEachOther(t *testing.T) {
	keys := map[string]string{}
	fps := map[string]string{}
	for _, id := range []string{"lambda-a", "lambda-b", "hetzner-cpu2"} {
		keys[id], fps[id] = hostKeyFile(t)
	}
	inv, err := config.Parse("samefs.yaml", []byte(`sync_routing: {max_disk_usage_percent: 100, min_free_disk_percent: 0.01, replication_target: 2}
hosts:
  lambda-a: {provider: lambda, is_ephemeral: true}
  lambda-b: {provider: lambda, ssh_host: 127.0.0.1, ssh_user: ubuntu, ssh_host_key: "`+fps["lambda-b"]+`"}
  hetzner-cpu2: {provider: hetzner, ssh_host: 127.0.0.1, ssh_user: root, ssh_host_key: "`+fps["hetzner-cpu2"]+`"}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := startCoordinator(t, coordinator.Config{Inventory: inv})
	dead := closedURL(t)
	det := detect.Options{Env: func(string) string { return "" }, HetznerURL: dead, VultrURL: dead, NebiusURL: dead, Timeout: 100 * time.Millisecond}
	for _, n := range []struct{ id, mounts string }{{"lambda-a", lambdaAMounts}, {"lambda-b", lambdaBMounts}, {"hetzner-cpu2", hetznerMounts}} {
		host := inv.Hosts[n.id]
		a, err := agent.New(secureAgent(t, agent.Config{NodeID: n.id, Host: host, InstanceID: "i-" + n.id, NATSURLs: []string{h.url}, StateDir: t.TempDir(),
			HeartbeatInterval: 200 * time.Millisecond, Detect: det, Paths: paths.Resolver{Root: fixtureRoot(t, n.mounts), Home: "/home/ubuntu"},
			ByeTimeout: 2 * time.Second, HostKeyPaths: []string{keys[n.id]}}), testLog(t).With().Str("agent", n.id).Logger())
		if err != nil {
			t.Fatal(err)
		}
		runAgent(t, a, nil)
	}
	for _, id := range []string{"lambda-a", "lambda-b", "hetzner-cpu2"} {
		waitState(t, h.url, id, mesh.StateHealthy, 30*time.Second)
	}

	// What the agents reported, as the registry holds it.
	st := status(t, h.url)
	want := map[string]string{"lambda-a": "nfs:10.19.0.5:/ringrift-us-east", "lambda-b": "nfs:10.19.0.5:/ringrift-us-east", "hetzner-cpu2": ""}
	for id, fs := range want {
		rec, _ := nodeIn(st, id)
		if got := strings.Join(rec.FilesystemIDs, ","); got != fs {
			t.Errorf("%s reports filesystems %q, want %q (from its mount table)", id, got, fs)
		}
	}

	nc, err := natsConnect(t, h.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var routes api.Routes
	testutil.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := testutil.APIClient(t, h.url, nc).Call(ctx, api.OpRoutes, nil, &routes); err != nil {
			return err
		}
		if len(routes.Plans["lambda-a"]) == 0 {
			return fmt.Errorf("no plan for lambda-a yet: %+v", routes.Plans)
		}
		return nil
	})
	byNode := map[string]string{}
	for _, c := range routes.Plans["lambda-a"] {
		byNode[c.NodeID] = fmt.Sprintf("selected=%v %s", c.Selected, c.Reason)
		switch c.NodeID {
		case "lambda-b":
			if c.Selected || !strings.Contains(c.Reason, "shares filesystem nfs:10.19.0.5:/ringrift-us-east") {
				t.Errorf("lambda-b: selected=%v reason %q, want rejected for sharing lambda-a's NFS filesystem", c.Selected, c.Reason)
			}
		case "hetzner-cpu2":
			if !c.Selected {
				t.Errorf("hetzner-cpu2 not selected: %s", c.Reason)
			}
		}
	}
	if _, ok := byNode["lambda-b"]; !ok {
		t.Errorf("lambda-b not considered at all: %v", byNode)
	}
	if _, ok := byNode["hetzner-cpu2"]; !ok {
		t.Errorf("hetzner-cpu2 not considered at all: %v", byNode)
	}
}

// hostKeyFile writes a fresh ed25519 public host key (authorized_keys
// format) for an agent to report and returns its path and fingerprint
// (the inventory's ssh_host_key: targets need a trusted host key).
func hostKeyFile(t *testing.T) (string, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(p, ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, ssh.FingerprintSHA256(sp)
}
