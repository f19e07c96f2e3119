package bootstrap

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/detect"
)

func TestNewTokenShapeAndHash(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidToken(tok) || len(tok) != 47 || seen[tok] {
			t.Fatalf("token %q (valid %v, seen %v)", tok, ValidToken(tok), seen[tok])
		}
		seen[tok] = true
		if h := HashToken(tok); len(h) != 64 || strings.Contains(h, tok) {
			t.Fatalf("hash %q", h)
		}
	}
}

func TestRequestValidateNamesTheField(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	tok, _ := NewToken()
	good := Request{Token: tok, InstanceID: "29129529", Provider: "vast", Node: "vast-29129529", PublicKey: pub}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for field, r := range map[string]Request{
		"token":       {Token: "rme_" + strings.Repeat("!", 43), InstanceID: "1", PublicKey: pub},
		"instance_id": {Token: tok, InstanceID: "1;reboot", PublicKey: pub},
		"provider":    {Token: tok, InstanceID: "1", Provider: "v a", PublicKey: pub},
		"node":        {Token: tok, InstanceID: "1", Node: "../x", PublicKey: pub},
		"public_key":  {Token: tok, InstanceID: "1", PublicKey: "OAAAA"},
	} {
		err := r.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("%s: the error shows the token", field)
		}
	}
}

func TestEnsureCredsWithoutEnrolling(t *testing.T) {
	dir := t.TempDir()
	log := zerolog.Nop()
	ctx := context.Background()
	// Existing creds: their name, no token needed.
	akp, _ := nkeys.CreateAccount()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = "vast-1"
	j, _ := uc.Encode(akp)
	seed, _ := ukp.Seed()
	creds, _ := jwt.FormatUserConfig(j, seed)
	have := filepath.Join(dir, "have.creds")
	if err := os.WriteFile(have, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	if name, err := EnsureCreds(ctx, AgentOptions{CredsOut: have}, log); err != nil || name != "vast-1" {
		t.Fatalf("existing creds: %q %v", name, err)
	}
	missing := filepath.Join(dir, "new.creds")
	if _, err := EnsureCreds(ctx, AgentOptions{CredsOut: missing}, log); err == nil || !strings.Contains(err.Error(), "no enrollment token") {
		t.Fatalf("no token: %v", err)
	}
	if _, err := EnsureCreds(ctx, AgentOptions{CredsOut: missing, Token: "hunter2"}, log); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad token: %v", err)
	}
	tok, _ := NewToken()
	nothing := func(context.Context, detect.Result) detect.Result {
		return detect.Result{Provider: detect.ProviderUnknown}
	}
	if _, err := EnsureCreds(ctx, AgentOptions{CredsOut: missing, Token: tok, Detect: nothing}, log); err == nil || !strings.Contains(err.Error(), "--instance-id") {
		t.Fatalf("no instance ID: %v", err)
	}
}
