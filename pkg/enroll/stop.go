package enroll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/ringmesh/ringmesh/pkg/fleet"
)

// stopScript stops the agent under prefix: the systemd unit when it is
// installed (SIGINT to the agent first, then stop and disable: systemctl
// stop alone would send the unit's KillSignal, SIGTERM, which the agent
// reads as a preemption), and the supervisor named by its pid file
// (SIGINT, forwarded: the agent flushes and says bye), waiting up to 60 s
// before SIGKILL. It prints what it stopped: "systemd", "supervisor",
// both, or "none".
func stopScript(prefix string) string {
	l := layout{p: prefix}
	return `S=""; [ "$(id -u)" = 0 ] || S="sudo -n"; stopped=""
if [ -f ` + unitPath + ` ] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ringmesh-agent 2>/dev/null; then
  $S systemctl kill --signal=SIGINT --kill-whom=main ringmesh-agent
  $S systemctl stop ringmesh-agent && $S systemctl disable --quiet ringmesh-agent && stopped="systemd"
fi
if pid=$(cat ` + sq(l.pidFile()) + ` 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
  kill -INT "$pid"; i=0
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i+1))
    if [ $i -gt 600 ]; then kill -KILL "$pid" 2>/dev/null; a=$(cat ` + sq(l.agentPid()) + ` 2>/dev/null) && kill -KILL "$a" 2>/dev/null; break; fi
    sleep 0.1
  done
  stopped="$stopped supervisor"
fi
echo "${stopped:-none}"`
}

// StopAgent stops the agent installed under prefix on the node c is
// connected to and returns what was stopped ("systemd", "supervisor" or
// "none"). The supervisor forwards the signal to the agent and exits when
// it has; the state directory is kept.
func StopAgent(ctx context.Context, c *ssh.Client, prefix string) (string, error) {
	out, err := run(ctx, c, stopScript(prefix))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// Stop connects to a node whose host key is pinned (or vouched for by its
// agent's reported fingerprint: no prompt) and stops its agent (meshctl
// revoke). It returns what was stopped.
func (cfg *Config) Stop(ctx context.Context, e fleet.SSHEntry) (string, error) {
	if err := e.Check(); err != nil {
		return "", fmt.Errorf("SSH endpoint: %w", err)
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := ValidPrefix(prefix); err != nil {
		return "", err
	}
	if cfg.Pins == nil {
		return "", errors.New("enroll: Pins required")
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	auth, closeAuth, err := authMethods(e.IdentityFile)
	if err != nil {
		return "", err
	}
	defer closeAuth()
	cb := cfg.Pins.callback(e.Node, trust{expected: e.HostKey})
	client, err := dial(ctx, e.Host, e.Port, e.User, auth, cfg.Pins.algorithms(e.Node), cb, 20*time.Second)
	if err != nil {
		if errors.Is(err, ErrHostKeyChanged) || errors.Is(err, ErrHostKeyUntrusted) {
			return "", unwrapHandshake(err)
		}
		return "", fmt.Errorf("ssh %s@%s:%d: %w", e.User, e.Host, e.Port, err)
	}
	defer client.Close()
	if strings.HasPrefix(prefix, "~/") {
		sc, err := sftp.NewClient(client)
		if err != nil {
			return "", fmt.Errorf("sftp: %w", err)
		}
		home, err := sc.Getwd()
		sc.Close()
		if err != nil {
			return "", err
		}
		prefix = strings.TrimSuffix(home, "/") + prefix[1:]
	}
	return StopAgent(ctx, client, prefix)
}
