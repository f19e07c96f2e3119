package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringmesh/ringmesh/internal/testutil"
	"github.com/ringmesh/ringmesh/pkg/auth"
)

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBinary runs the coordinator's run() as the binary would (flags,
// environment) with an embedded NATS server on a random loopback port and
// HTTP on addr, until the test ends.
func startBinary(t *testing.T, addr string) {
	t.Helper()
	// As an operator would: the issuer store exists before the coordinator
	// starts (`meshctl creds init`); the bus is authenticated.
	dataDir := t.TempDir()
	if _, err := auth.Open(filepath.Join(dataDir, "auth")); err != nil {
		t.Fatal(err)
	}
	args := []string{"--name", "hetzner-cpu1", "--data-dir", dataDir, "--nats-listen", "127.0.0.1:-1", "--http", addr, "--log-level", "error"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("coordinator did not stop within 30 s")
		}
	})
	testutil.Eventually(t, 30*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

func postWebhook(t *testing.T, addr, secret, body string) int {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + body))
	req, err := http.NewRequest("POST", "http://"+addr+"/webhooks/vast", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vast-Timestamp", ts)
	req.Header.Set("X-Vast-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// RINGMESH_VAST_WEBHOOK_SECRET, documented in the README, turns the Vast
// webhook on: a delivery signed with it is accepted, one signed with
// another key is refused, and the variable is gone from the environment
// (children such as the nebius CLI do not inherit it). Without it the
// endpoint answers 404.
func TestVastWebhookSecretFromEnvironment(t *testing.T) {
	const secret = "whsec-test-only-0123456789"
	body := `{"event_id":"ev-1","user_id":1,"notif_type":"client:instance_started","subject":"s","message":"m","timestamp":0}`
	t.Run("set", func(t *testing.T) {
		t.Setenv(EnvVastWebhookSecret, " "+secret+"\n")
		addr := freeAddr(t)
		startBinary(t, addr)
		if v, ok := os.LookupEnv(EnvVastWebhookSecret); ok {
			t.Errorf("%s still in the environment (%d bytes)", EnvVastWebhookSecret, len(v))
		}
		if code := postWebhook(t, addr, "another-key", body); code != http.StatusUnauthorized {
			t.Errorf("wrong key: HTTP %d, want 401", code)
		}
		if code := postWebhook(t, addr, secret, body); code != http.StatusNoContent {
			t.Errorf("signed with the secret: HTTP %d, want 204 (verified, event type ignored)", code)
		}
	})
	t.Run("unset", func(t *testing.T) {
		t.Setenv(EnvVastWebhookSecret, "")
		addr := freeAddr(t)
		startBinary(t, addr)
		if code := postWebhook(t, addr, secret, body); code != http.StatusNotFound {
			t.Errorf("no secret: HTTP %d, want 404", code)
		}
	})
}

func TestUsageNamesTheEnvironment(t *testing.T) {
	var b strings.Builder
	err := func() error {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		defer r.Close()
		old := os.Stderr
		os.Stderr = w
		runErr := run(context.Background(), []string{"-h"})
		os.Stderr = old
		w.Close()
		buf := make([]byte, 1<<16)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return runErr
	}()
	if err == nil {
		t.Fatal("-h: want flag.ErrHelp")
	}
	for _, want := range []string{EnvVastWebhookSecret, "RINGMESH_GOSSIP_KEY", "VAST_API_KEY", "-inventory"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("-h does not mention %s:\n%s", want, b.String())
		}
	}
}

// A zero or negative period is refused before anything starts (a ticker
// would panic on it), naming the flag.
func TestNonPositiveIntervalsRefused(t *testing.T) {
	for _, args := range [][]string{{"--policy-interval", "0s"}, {"--reconcile-interval", "-5s"}, {"--launch-claim-stale", "0s"}} {
		err := run(context.Background(), append(args, "--data-dir", t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), args[0]) || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("%v: %v, want an error naming %s", args, err, args[0])
		}
	}
}
