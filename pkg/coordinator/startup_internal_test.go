package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type fakeTokens struct{ tok string }

func (f fakeTokens) Token(_ context.Context, node, provider string) (string, error) {
	if f.tok == "" {
		return "", ErrEnrollNotConfigured
	}
	return f.tok + "-" + node + "-" + provider, nil
}

type fakeBootTokens struct{ fakeTokens }

func (fakeBootTokens) BootstrapCreds(context.Context) ([]byte, error) {
	return []byte("boot-creds"), nil
}

func TestAgentScriptVariantsAndQuoting(t *testing.T) {
	ctx := context.Background()
	a := AgentScript{NATSURL: "tls://203.0.113.1:4222", AgentURL: "https://example.invalid/ringmesh-agent", CAPEM: []byte("PEM")}
	script, env, err := a.Script(ctx, "vast-new-1", "vast")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#!/bin/sh", "set -eu", "base64 -d > /etc/ringmesh/ca.pem", "curl -fsSL --retry 5 -o /usr/local/bin/ringmesh-agent 'https://example.invalid/ringmesh-agent'",
		"while [ ! -s /etc/ringmesh/node.creds ]", "--node 'vast-new-1' --provider 'vast'", "--creds /etc/ringmesh/node.creds"} {
		if !strings.Contains(script, want) {
			t.Errorf("no-token script lacks %q:\n%s", want, script)
		}
	}
	if env[EnvNATSURL] != a.NATSURL || env[EnvEnrollToken] != "" || strings.Contains(script, "enroll") {
		t.Errorf("no-token env %v / script mentions enrolment:\n%s", env, script)
	}

	a.Tokens = fakeTokens{tok: "tok123"}
	script, env, err = a.Script(ctx, "vast-new-1", "vast")
	if err != nil {
		t.Fatal(err)
	}
	if env[EnvEnrollToken] != "tok123-vast-new-1-vast" || strings.Contains(script, "tok123") ||
		!strings.Contains(script, "--enroll-token-file /etc/ringmesh/enroll.token") || !strings.Contains(script, "unset "+EnvEnrollToken) {
		t.Errorf("token variant: env %v\n%s", env, script)
	}

	a.Tokens = fakeBootTokens{fakeTokens{tok: "tok123"}}
	script, env, err = a.Script(ctx, "vast-new-1", "vast")
	if err != nil {
		t.Fatal(err)
	}
	if env[EnvBootstrapCreds] != "Ym9vdC1jcmVkcw==" || strings.Contains(script, "Ym9vdC1jcmVkcw") ||
		!strings.Contains(script, "base64 -d > /etc/ringmesh/bootstrap.creds") || !strings.Contains(script, "unset "+EnvBootstrapCreds) ||
		!strings.Contains(script, "--enroll-token-file /etc/ringmesh/enroll.token --bootstrap-creds /etc/ringmesh/bootstrap.creds") {
		t.Errorf("token variant with bootstrap creds: env %v\n%s", env, script)
	}

	a.Tokens = fakeTokens{}
	if _, _, err := a.Script(ctx, "vast-new-1", "vast"); !errors.Is(err, ErrEnrollNotConfigured) {
		t.Errorf("token source without tokens: %v", err)
	}
	a.Tokens = nil
	for _, bad := range []AgentScript{
		{NATSURL: ""},
		{NATSURL: "tls://user:pw@host:4222"},
		{NATSURL: "http://host:4222"},
		{NATSURL: "tls://host:4222'; rm -rf /"},
		{NATSURL: "tls://host:4222", AgentURL: "file:///etc/passwd"},
	} {
		if _, _, err := bad.Script(ctx, "vast-new-1", "vast"); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, _, err := (AgentScript{NATSURL: "tls://h:1"}).Script(ctx, "bad node;", "vast"); err == nil {
		t.Error("a node ID with a shell metacharacter was accepted")
	}
}
