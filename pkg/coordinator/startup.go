package coordinator

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/ringmesh/ringmesh/pkg/mesh"
)

// StartupScripter renders what a launched instance runs at first boot:
// script is a POSIX shell script (Vast onstart, RunPod docker start
// command, Lambda user_data), env the environment it needs (container env
// on Vast and RunPod). It is called once per launch, before the create
// call, for the new node's ID and provider. A one-time enrollment token, if
// any, travels in env (RINGMESH_ENROLL_TOKEN), never in the script text:
// providers show a container's env only to the account owner, and the
// script writes the token to a 0600 file and unsets it.
type StartupScripter interface {
	Script(ctx context.Context, node, provider string) (script string, env map[string]string, err error)
}

// TokenSource issues the one-time enrollment token a launched node
// presents at its first hello (docs/enrollment-token.md). The token is
// bound to node and provider when issued; the instance ID is not known
// before the create call returns, so the coordinator binds the token to
// the instance the create answered (and records the token's hash in the
// launch record, so a retry that finds the instance binds it too). Until
// then the node is told to ask again.
type TokenSource interface {
	Token(ctx context.Context, node, provider string) (string, error)
}

// BootstrapCredsSource is implemented by a TokenSource that also hands
// out the shared bootstrap credential (role bootstrap: it may only ask on
// mesh.v1.enroll) the agent connects with to present its token. Its
// content, a NATS creds file, travels in env (EnvBootstrapCreds, base64)
// like the token, never in the script text.
type BootstrapCredsSource interface {
	BootstrapCreds(ctx context.Context) ([]byte, error)
}

// ErrEnrollNotConfigured: no enrollment token source is configured.
var ErrEnrollNotConfigured = errors.New("enrollment tokens not configured")

// Startup-script environment variables.
const (
	EnvEnrollToken    = "RINGMESH_ENROLL_TOKEN"
	EnvNATSURL        = "RINGMESH_NATS_URL"
	EnvBootstrapCreds = "RINGMESH_BOOTSTRAP_CREDS_B64"
)

// AgentScript is the default StartupScripter. It renders a script that
// installs the agent (downloads AgentURL to /usr/local/bin/ringmesh-agent
// unless ringmesh-agent is already on PATH), writes the CA to
// /etc/ringmesh/ca.pem and runs the agent for the node against NATSURL:
//
//   - with Tokens set: the token goes to /etc/ringmesh/enroll.token (0600)
//     and the agent runs with --enroll-token-file;
//   - without (the documented no-token variant): the script waits until an
//     operator puts node credentials at /etc/ringmesh/node.creds (meshctl
//     creds issue --role node --name NODE, then copy it over SSH) and runs
//     the agent with --creds. The launch says so in its answer.
type AgentScript struct {
	// AgentURL is an http(s) URL of the agent binary; "" = the image has it.
	AgentURL string
	// NATSURL is what the agent connects to (tls:// or nats://host:port).
	NATSURL string
	// CAPEM is the ringmesh CA certificate (public) the agent pins.
	CAPEM []byte
	// Tokens issues enrollment tokens. nil: the coordinator's own launch
	// tokens when it has an issuer store (Config.Auth), else the no-token
	// variant.
	Tokens TokenSource
}

var scriptURLRe = regexp.MustCompile(`^[A-Za-z0-9._~:/?#\[\]@!&()*+,;=%-]+$`)

// Variant names the script the node gets: "enroll-token" or "no-token".
func (a AgentScript) Variant() string {
	if a.Tokens != nil {
		return "enroll-token"
	}
	return "no-token: the node waits for /etc/ringmesh/node.creds (meshctl creds issue --role node, copy it over)"
}

// Script renders the startup script for node on provider. Every value
// that reaches the script is checked against a pattern and single-quoted.
func (a AgentScript) Script(ctx context.Context, node, provider string) (string, map[string]string, error) {
	if err := mesh.ValidateNodeID(node); err != nil {
		return "", nil, fmt.Errorf("startup script: %w", err)
	}
	if !mesh.KnownProvider(provider) {
		return "", nil, fmt.Errorf("startup script: unknown provider %q", provider)
	}
	if a.NATSURL == "" {
		return "", nil, errors.New("startup script: no NATS URL for the agent (coordinator --launch-nats-url)")
	}
	for _, u := range strings.Split(a.NATSURL, ",") {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "tls" && pu.Scheme != "nats") || pu.Host == "" || pu.User != nil || !scriptURLRe.MatchString(u) {
			return "", nil, fmt.Errorf("startup script: NATS URL %q: want tls://host:port or nats://host:port without credentials", u)
		}
	}
	if a.AgentURL != "" {
		pu, err := url.Parse(a.AgentURL)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || pu.User != nil || !scriptURLRe.MatchString(a.AgentURL) {
			return "", nil, fmt.Errorf("startup script: agent URL %q: want an http(s) URL without credentials", a.AgentURL)
		}
	}
	env := map[string]string{EnvNATSURL: a.NATSURL}
	if a.Tokens != nil {
		tok, err := a.Tokens.Token(ctx, node, provider)
		if err != nil {
			return "", nil, fmt.Errorf("startup script: enrollment token: %w", err)
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n'\"\\$`") {
			return "", nil, errors.New("startup script: the enrollment token is empty or has characters a token never has")
		}
		env[EnvEnrollToken] = tok
		if bs, ok := a.Tokens.(BootstrapCredsSource); ok {
			creds, err := bs.BootstrapCreds(ctx)
			if err != nil {
				return "", nil, fmt.Errorf("startup script: bootstrap credential: %w", err)
			}
			env[EnvBootstrapCreds] = base64.StdEncoding.EncodeToString(creds)
		}
	}
	var b strings.Builder
	q := shellQuote
	fmt.Fprintf(&b, "#!/bin/sh\n# ringmesh startup script for node %s on %s (rendered by the coordinator)\nset -eu\n", node, provider)
	b.WriteString("umask 077\nmkdir -p /etc/ringmesh /var/lib/ringmesh/agent\n")
	if len(a.CAPEM) > 0 {
		fmt.Fprintf(&b, "echo %s | base64 -d > /etc/ringmesh/ca.pem\n", q(base64.StdEncoding.EncodeToString(a.CAPEM)))
	}
	b.WriteString("AGENT=$(command -v ringmesh-agent || true)\n")
	if a.AgentURL != "" {
		fmt.Fprintf(&b, "if [ -z \"$AGENT\" ]; then\n  curl -fsSL --retry 5 -o /usr/local/bin/ringmesh-agent %s\n  chmod 755 /usr/local/bin/ringmesh-agent\n  AGENT=/usr/local/bin/ringmesh-agent\nfi\n", q(a.AgentURL))
	}
	b.WriteString("if [ -z \"$AGENT\" ]; then echo 'ringmesh: no ringmesh-agent on PATH and no agent URL' >&2; exit 1; fi\n")
	common := fmt.Sprintf("--node %s --provider %s --nats-url \"$%s\" --ca /etc/ringmesh/ca.pem --state-dir /var/lib/ringmesh/agent", q(node), q(provider), EnvNATSURL)
	if a.Tokens != nil {
		fmt.Fprintf(&b, "printf '%%s' \"$%s\" > /etc/ringmesh/enroll.token\nunset %s\n", EnvEnrollToken, EnvEnrollToken)
		boot := ""
		if _, ok := env[EnvBootstrapCreds]; ok {
			fmt.Fprintf(&b, "printf '%%s' \"$%s\" | base64 -d > /etc/ringmesh/bootstrap.creds\nunset %s\n", EnvBootstrapCreds, EnvBootstrapCreds)
			boot = " --bootstrap-creds /etc/ringmesh/bootstrap.creds"
		}
		fmt.Fprintf(&b, "exec \"$AGENT\" %s --enroll-token-file /etc/ringmesh/enroll.token%s\n", common, boot)
	} else {
		b.WriteString("echo 'ringmesh: waiting for node credentials at /etc/ringmesh/node.creds' >&2\n")
		b.WriteString("while [ ! -s /etc/ringmesh/node.creds ]; do sleep 10; done\n")
		fmt.Fprintf(&b, "exec \"$AGENT\" %s --creds /etc/ringmesh/node.creds\n", common)
	}
	return b.String(), env, nil
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// startup returns the configured StartupScripter, or an error saying none is.
func (c *Coordinator) startup() (StartupScripter, error) {
	if c.cfg.Startup == nil {
		return nil, errors.New("no startup script configured on this coordinator (coordinator --launch-nats-url): a launched node could not join")
	}
	return c.cfg.Startup, nil
}
