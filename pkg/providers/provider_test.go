package providers_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/pkg/providers"
)

func TestErrorMessageAndKind(t *testing.T) {
	e := &providers.Error{Provider: "vast", Op: "stop", Kind: providers.KindRateLimited, Status: 429,
		Code: "rate_limit_exceeded", RetryAfter: time.Second, Err: errors.New("API requests too frequent")}
	want := "vast stop: rate_limited (HTTP 429) rate_limit_exceeded: API requests too frequent"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	wrapped := fmt.Errorf("reconcile: %w", e)
	if providers.KindOf(wrapped) != providers.KindRateLimited {
		t.Errorf("KindOf(wrapped) = %q", providers.KindOf(wrapped))
	}
	if providers.KindOf(nil) != "" || providers.KindOf(errors.New("plain")) != "" {
		t.Error("KindOf of nil/plain errors must be empty")
	}
}

func TestErrorNotFoundMatchesSentinel(t *testing.T) {
	e := &providers.Error{Provider: "runpod", Op: "get", Kind: providers.KindNotFound, Status: 404, Err: errors.New("pod x not found")}
	if !errors.Is(e, providers.ErrNotFound) {
		t.Error("a KindNotFound error must match ErrNotFound")
	}
	other := &providers.Error{Provider: "runpod", Op: "get", Kind: providers.KindTransient, Err: errors.New("boom")}
	if errors.Is(other, providers.ErrNotFound) {
		t.Error("a transient error must not match ErrNotFound")
	}
	already := &providers.Error{Kind: providers.KindNotFound, Err: fmt.Errorf("x: %w", providers.ErrNotFound)}
	if !errors.Is(already, providers.ErrNotFound) {
		t.Error("wrapped sentinel lost")
	}
}

func TestInstanceEndpointAndBillable(t *testing.T) {
	in := providers.Instance{SSH: []providers.SSHEndpoint{
		{Kind: providers.EndpointProxy, Host: "ssh6.vast.ai", Port: 19528, User: "root"},
		{Kind: providers.EndpointDirect, Host: "203.0.113.45", Port: 40001, User: "root"},
	}}
	p, ok := in.Endpoint(providers.EndpointProxy)
	if !ok || p.String() != "root@ssh6.vast.ai:19528" {
		t.Errorf("proxy = %v %v", p, ok)
	}
	d, ok := in.Endpoint(providers.EndpointDirect)
	if !ok || d.String() != "root@203.0.113.45:40001" {
		t.Errorf("direct = %v %v", d, ok)
	}
	cases := []struct {
		s     providers.State
		caps  providers.Capabilities
		bills bool
	}{
		{providers.StateRunning, providers.Capabilities{}, true},
		{providers.StatePaused, providers.Capabilities{}, true},
		{providers.StateStopped, providers.Capabilities{}, false},
		{providers.StateStopped, providers.Capabilities{BillsWhileStopped: true}, true},
		{providers.StateTerminated, providers.Capabilities{BillsWhileStopped: true}, false},
		{providers.StateUnknown, providers.Capabilities{}, false},
	}
	for _, c := range cases {
		if got := (providers.Instance{State: c.s}).Billable(c.caps); got != c.bills {
			t.Errorf("Billable(%s, %+v) = %v", c.s, c.caps, got)
		}
	}
}

// Hosts from API answers are trimmed and must look like a DNS name or an IP
// literal before they become an SSH endpoint.
func TestCleanHost(t *testing.T) {
	for in, want := range map[string]string{
		" 203.0.113.45\n":      "203.0.113.45",
		"ssh5.vast.ai ":        "ssh5.vast.ai",
		"2001:db8::1":          "2001:db8::1",
		"":                     "",
		"a b":                  "",
		"203.0.113.45\nHost x": "",
		"-oProxyCommand=x":     "",
		"host;rm":              "",
		"not:an:ip":            "",
	} {
		got, ok := providers.CleanHost(in)
		if got != want || ok != (want != "") {
			t.Errorf("CleanHost(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	e := providers.SSHEndpoint{Host: "2001:db8::1", Port: 22, User: "root"}
	if e.String() != "root@[2001:db8::1]:22" {
		t.Errorf("IPv6 endpoint renders %q", e.String())
	}
}
