package meshctl

import (
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/fleet"
)

// An SSH user starting with -o is refused; a valid one gets "--" before
// the destination, and strict host key checking against the ringmesh file.
func TestSSHArgvRefusesOptionInjection(t *testing.T) {
	for _, e := range []fleet.SSHEntry{
		{Node: "vast-1", Host: "ssh6.vast.ai", Port: 22, User: "-oProxyCommand=touch /tmp/pwned", Source: "agent:direct"},
		{Node: "vast-1", Host: "-oProxyCommand=x", Port: 22, User: "root", Source: "agent:direct"},
		{Node: "vast-1", Host: "h", Port: 22, User: "root", IdentityFile: "-oProxyCommand=x y", Source: "agent:direct"},
	} {
		if argv, err := sshArgv(e, nil); err == nil {
			t.Errorf("%+v accepted: %q", e, argv)
		}
	}
	argv, err := sshArgv(fleet.SSHEntry{Node: "vast-1", Host: "ssh6.vast.ai", Port: 19528, User: "root", Source: "provider:proxy"}, []string{"uptime"})
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(argv, " ")
	if !strings.Contains(s, "-- root@ssh6.vast.ai uptime") || !strings.Contains(s, "StrictHostKeyChecking=yes") || !strings.Contains(s, "UserKnownHostsFile=") {
		t.Fatalf("argv %q", s)
	}
}
