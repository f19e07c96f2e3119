package meshctl

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringmesh/ringmesh/pkg/fleet"
	"github.com/ringmesh/ringmesh/pkg/sync/sshtest"
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

// ssh-config --known-hosts keeps a scanned key only when its fingerprint
// is the pinned one.
func TestWriteKnownHostsKeepsOnlyPinnedKeys(t *testing.T) {
	if _, err := exec.LookPath("ssh-keyscan"); err != nil {
		t.Skipf("ssh-config --known-hosts runs ssh-keyscan, which is not on PATH (%v); install openssh-client to run this test", err)
	}
	srv := sshtest.New(t, sshtest.Options{})
	file := filepath.Join(t.TempDir(), "known_hosts")
	var out, errOut bytes.Buffer
	o := &Options{out: &out, errOut: &errOut}
	entries := []fleet.SSHEntry{
		{Node: "good", Host: srv.Host, Port: srv.Port, User: srv.User, Source: "config", HostKey: srv.Fingerprint()},
		{Node: "mitm", Host: srv.Host, Port: srv.Port, User: srv.User, Source: "config", HostKey: "SHA256:" + strings.Repeat("Z", 43)},
	}
	if err := writeKnownHosts(o, entries, file); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "good ssh-ed25519 ") || strings.Contains(string(b), "mitm") {
		t.Fatalf("known_hosts:\n%s\nstderr: %s", b, errOut.String())
	}
}
