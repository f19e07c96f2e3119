package fleet

import (
	"strings"
	"testing"
)

// A value that failed its pattern never reaches the rendered config; host
// keys are pinned in the ringmesh known_hosts with strict checking.
func TestRenderSSHConfigRefusesInjection(t *testing.T) {
	good := SSHEntry{Node: "vast-1", Host: "ssh6.vast.ai", Port: 19528, User: "root", Source: "provider:proxy", HostKey: "SHA256:" + strings.Repeat("a", 43)}
	evil := []SSHEntry{
		{Node: "vast-2", Host: "h", Port: 22, User: "root", Source: "agent:direct", HostKey: "SHA256:x\nHost *\n  ProxyCommand touch /tmp/pwned"},
		{Node: "vast-3", Host: "h\n  ProxyCommand x", Port: 22, User: "root", Source: "agent:direct"},
		{Node: "vast-4", Host: "h", Port: 22, User: "-oProxyCommand=x", Source: "agent:direct"},
		{Node: "vast-5", Host: "h", Port: 22, User: "root", Source: "agent:direct", IdentityFile: "~/.ssh/k\n  ProxyCommand x"},
		{Node: "bad node\nHost *", Host: "h", Port: 22, User: "root", Source: "agent:direct"},
	}
	out := RenderSSHConfig(append([]SSHEntry{good}, evil...))
	for _, bad := range []string{"ProxyCommand", "Host *", "-oProxyCommand"} {
		if strings.Contains(out, bad) {
			t.Fatalf("%q reached the config:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "Host vast-1\n  HostName ssh6.vast.ai\n  Port 19528\n  User root\n") ||
		!strings.Contains(out, "  UserKnownHostsFile "+KnownHostsFile+"\n  StrictHostKeyChecking yes\n") {
		t.Fatalf("good entry not rendered strictly:\n%s", out)
	}
	for _, n := range []string{"vast-2", "vast-3", "vast-4", "vast-5"} {
		if !strings.Contains(out, "# "+n+": left out: ") || strings.Contains(out, "Host "+n+"\n") {
			t.Errorf("%s not left out with a reason:\n%s", n, out)
		}
	}
}

func FuzzRenderSSHConfig(f *testing.F) {
	f.Add("vast-1", "ssh6.vast.ai", "root", "SHA256:"+strings.Repeat("a", 43), "~/.ssh/id")
	f.Add("n", "h\nHost *", "-oX", "SHA256:x\n", "k")
	f.Fuzz(func(t *testing.T, node, host, user, fp, key string) {
		out := RenderSSHConfig([]SSHEntry{{Node: node, Host: host, Port: 22, User: user, HostKey: fp, IdentityFile: key, Source: "agent:direct"}})
		blocks := strings.Count(out, "\nHost ")
		if blocks > 1 {
			t.Fatalf("one entry rendered %d Host blocks:\n%s", blocks, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "Host ") || strings.HasPrefix(line, "  ") {
				continue
			}
			t.Fatalf("unexpected line %q in:\n%s", line, out)
		}
	})
}
