package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/rs/zerolog"

	"github.com/ringmesh/ringmesh/pkg/detect"
)

// TokenEnv is the environment variable an agent reads its enrollment token
// from when no token file is given (a provider's env mechanism: Vast
// `-e`, RunPod env). The agent removes it from its environment once read.
const TokenEnv = "RINGMESH_ENROLL_TOKEN"

// AgentOptions is what the agent knows before it has credentials.
type AgentOptions struct {
	// TokenFile holds the token (deleted after a successful enrollment);
	// Token is the token itself when it came from TokenEnv. One of them.
	TokenFile string
	Token     string
	// BootstrapCreds is the shared bootstrap credential; default
	// bootstrap.creds next to CredsOut.
	BootstrapCreds string
	CAFile         string
	URLs           []string
	// CredsOut is the node's creds file: when it exists, nothing is done.
	CredsOut string
	// Node, Provider and InstanceID are what flags say ("" = detect).
	Node, Provider, InstanceID string
	// Detect finds provider and instance ID (default detect.Detect, which
	// reads Vast's CONTAINER_ID / VAST_CONTAINERLABEL and RunPod's
	// RUNPOD_POD_ID first).
	Detect func(ctx context.Context, override detect.Result) detect.Result
}

// EnsureCreds gives the agent its own credentials: when CredsOut exists it
// returns the node name in it; otherwise it enrolls with the token
// (Enroll), deletes the token file and returns the node name it was
// enrolled as. Without creds and without a token it is an error.
func EnsureCreds(ctx context.Context, o AgentOptions, log zerolog.Logger) (string, error) {
	if b, err := os.ReadFile(o.CredsOut); err == nil {
		tok, err := jwt.ParseDecoratedJWT(b)
		if err != nil {
			return "", fmt.Errorf("credentials %s: %w", o.CredsOut, err)
		}
		uc, err := jwt.DecodeUserClaims(tok)
		if err != nil {
			return "", fmt.Errorf("credentials %s: %w", o.CredsOut, err)
		}
		if o.TokenFile != "" || o.Token != "" {
			log.Info().Str("creds", o.CredsOut).Msg("credentials exist; the enrollment token is not needed")
		}
		return uc.Name, nil
	}
	token := o.Token
	if o.TokenFile != "" {
		b, err := os.ReadFile(o.TokenFile)
		if err != nil {
			return "", fmt.Errorf("enrollment token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return "", fmt.Errorf("no credentials in %s and no enrollment token (--enroll-token-file or %s)", o.CredsOut, TokenEnv)
	}
	if !ValidToken(token) {
		return "", errors.New("enrollment token: not a ringmesh enrollment token (want rme_ and 43 base64url characters; made by `meshctl token create`)")
	}
	provider, instance := o.Provider, o.InstanceID
	if instance == "" || provider == "" {
		det := o.Detect
		if det == nil {
			det = func(ctx context.Context, ov detect.Result) detect.Result {
				return detect.Detect(ctx, detect.Options{Override: ov})
			}
		}
		r := det(ctx, detect.Result{Provider: provider, InstanceID: instance})
		if provider == "" && r.Provider != detect.ProviderUnknown {
			provider = r.Provider
		}
		if instance == "" {
			instance = r.InstanceID
		}
	}
	if instance == "" {
		return "", errors.New("enrollment needs this node's provider instance ID: none detected (Vast CONTAINER_ID, RunPod RUNPOD_POD_ID); pass --instance-id")
	}
	bc := o.BootstrapCreds
	if bc == "" {
		bc = filepath.Join(filepath.Dir(o.CredsOut), "bootstrap.creds")
	}
	node, err := Enroll(ctx, Config{URLs: o.URLs, BootstrapCreds: bc, CAFile: o.CAFile, Token: token, InstanceID: instance, Provider: provider,
		Node: o.Node, CredsOut: o.CredsOut}, log)
	if err != nil {
		return "", err
	}
	if o.TokenFile != "" {
		if err := os.Remove(o.TokenFile); err != nil {
			log.Warn().Err(err).Str("file", o.TokenFile).Msg("could not delete the used enrollment token file")
		}
	}
	return node, nil
}
